#include "pasteflow/core/error.hpp"

#include <gtest/gtest.h>

namespace pasteflow {

TEST(Error, MessageNamesFilePlaceAndRecord) {
  Location where;
  where.file = "a.json";
  where.byte_offset = 120;
  where.path = "annotations[3]";
  where.record = "annotation id 7";
  InputError e("odd_polygon", "polygon has 7 values", where);
  EXPECT_STREQ(e.what(), "a.json:byte 120: annotations[3] (annotation id 7): polygon has 7 values");
  EXPECT_EQ(e.reason(), "odd_polygon");
  EXPECT_EQ(e.detail(), "polygon has 7 values");
}

TEST(Error, EmptyLocationLeavesMessageAlone) {
  Error e("x", "plain");
  EXPECT_STREQ(e.what(), "plain");
}

TEST(Error, ConfigKeyIsNamed) {
  Location where;
  where.file = "c.yaml";
  where.key = "augment.blur";
  ConfigError e("unknown_key", "unknown key", where);
  EXPECT_STREQ(e.what(), "c.yaml: key 'augment.blur': unknown key");
}

TEST(ErrorPolicy, ParsesAndRejects) {
  EXPECT_EQ(parse_error_policy("strict"), ErrorPolicy::kStrict);
  EXPECT_EQ(parse_error_policy("skip"), ErrorPolicy::kSkip);
  EXPECT_THROW(parse_error_policy("ignore"), ConfigError);
}

TEST(SkipReport, CountsByReasonKeepsFirstMessage) {
  SkipReport a, b;
  a.add("odd_polygon", "first");
  a.add("odd_polygon", "second");
  b.add("unknown_image", "u");
  b.add("odd_polygon", "third");
  a.merge(b);
  EXPECT_EQ(a.total(), 4u);
  EXPECT_EQ(a.count("odd_polygon"), 3u);
  EXPECT_EQ(a.count("missing"), 0u);
  EXPECT_EQ(a.first_messages().at("odd_polygon"), "first");
}

}  // namespace pasteflow
