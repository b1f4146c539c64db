#include "pasteflow/core/json_writer.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <limits>

namespace pasteflow {

TEST(JsonWriter, NestedContainersCompact) {
  JsonWriter w;
  w.begin_object().field("a", 1).key("b").begin_array().value(1.5).value("x").null().end_array();
  w.key("c").begin_object().end_object().field("d", true).end_object();
  EXPECT_EQ(w.str(), R"({"a":1,"b":[1.5,"x",null],"c":{},"d":true})");
}

TEST(JsonWriter, EscapesControlAndQuotes) {
  JsonWriter w;
  w.value(std::string_view("q\"\\\n\x01"));
  EXPECT_EQ(w.str(), R"("q\"\\\n\u0001")");
}

TEST(JsonWriter, DoublesRoundTripExactly) {
  for (double d : {0.1, 239.83, 1e-300, 12345678.901234567, 0.12440087035407288, 3.0, -0.0}) {
    std::string s;
    JsonWriter::append_double(d, s);
    EXPECT_EQ(std::strtod(s.c_str(), nullptr), d) << s;
  }
  std::string s;
  JsonWriter::append_double(3.0, s);
  EXPECT_EQ(s, "3.0");
  s.clear();
  JsonWriter::append_double(std::numeric_limits<double>::quiet_NaN(), s);
  EXPECT_EQ(s, "null");
}

TEST(JsonWriter, MisuseThrows) {
  JsonWriter w;
  w.begin_object();
  EXPECT_THROW(w.value(1), std::logic_error);
  EXPECT_THROW(w.end_array(), std::logic_error);
}

TEST(JsonWriter, IndentedOutput) {
  JsonWriter w(1);
  w.begin_object().field("a", 1).end_object();
  EXPECT_EQ(w.str(), "{\n \"a\": 1\n}");
}

}  // namespace pasteflow
