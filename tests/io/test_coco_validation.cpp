// Validation of bad COCO input: reason codes, locations (file, JSON path,
// byte offset, record id), the strict and skip policies.
#include <gtest/gtest.h>

#include "pasteflow/io/coco.hpp"

using namespace pasteflow;
using namespace pasteflow::io;

namespace {

const char* const kImage = R"({"id":1,"width":10,"height":10,"file_name":"a.jpg"})";
const char* const kCategory = R"({"id":1,"name":"thing"})";
const char* const kTri = "[[0,0,4,0,4,4]]";
const char* const kImage4x5 = R"({"id":1,"width":5,"height":4,"file_name":"a.jpg"})";  // RLE size [4, 5]

std::string doc(const std::string& annotations, const std::string& images = kImage,
                const std::string& categories = kCategory) {
  return R"({"images":[)" + images + R"(],"annotations":[)" + annotations + R"(],"categories":[)" + categories +
         "]}";
}

std::string ann(int64_t id, const std::string& rest = std::string(",\"segmentation\":") + kTri) {
  return "{\"id\":" + std::to_string(id) + ",\"image_id\":1,\"category_id\":1" + rest + "}";
}

/// Parses `json` strictly and returns the error it must raise.
InputError strict_error(const std::string& json, LoadOptions opt = {}) {
  opt.policy = ErrorPolicy::kStrict;
  try {
    parse_coco(json, "bad.json", opt);
  } catch (const InputError& e) {
    return e;
  }
  ADD_FAILURE() << "no InputError for: " << json;
  return InputError("none", "none");
}

/// Checks reason, file name, JSON path and record id in the message, and
/// the byte offset when `offset_of` is given (its first occurrence).
void expect_problem(const std::string& json, const std::string& reason, const std::string& path,
                    const std::string& record, const std::string& offset_of = "") {
  SCOPED_TRACE(json);
  const InputError e = strict_error(json);
  EXPECT_EQ(e.reason(), reason) << e.what();
  const std::string msg = e.what();
  EXPECT_NE(msg.find("bad.json"), std::string::npos) << msg;
  EXPECT_EQ(e.where().path, path) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  if (!record.empty()) {
    EXPECT_EQ(e.where().record, record) << msg;
    EXPECT_NE(msg.find(record), std::string::npos) << msg;
  }
  EXPECT_GE(e.where().byte_offset, 0) << msg;
  if (!offset_of.empty()) {
    EXPECT_EQ(e.where().byte_offset, static_cast<int64_t>(json.find(offset_of))) << msg;
  }
  EXPECT_NE(msg.find("byte " + std::to_string(e.where().byte_offset)), std::string::npos) << msg;
}

}  // namespace

TEST(CocoValidation, GoodMinimalDocument) {
  const CocoDataset ds = parse_coco(doc(ann(5)), "ok.json");
  ASSERT_EQ(ds.annotations.size(), 1u);
  EXPECT_EQ(ds.polygon(ds.annotations[0], 0).size(), 6u);
  EXPECT_FALSE(ds.annotations[0].has_area);
  EXPECT_FALSE(ds.annotations[0].has_iscrowd);
}

TEST(CocoValidation, OddPolygon) {
  const std::string j = doc(ann(7, R"(,"segmentation":[[0,0,4,0,4,4],[1,2,3,4,5,6,7]])"));
  expect_problem(j, "odd_polygon", "annotations[0].segmentation[1]", "annotation id 7", "[1,2,3,4,5,6,7]");
}

TEST(CocoValidation, ShortPolygonOfFourNumbers) {
  // The id comes after the segmentation (real COCO key order); still named.
  const std::string j = doc(ann(1) + R"(,{"segmentation":[[1,2,3,4]],"image_id":1,"category_id":1,"id":12})");
  expect_problem(j, "short_polygon", "annotations[1].segmentation[0]", "annotation id 12", "[1,2,3,4]");
  EXPECT_NE(std::string(strict_error(j).what()).find("box"), std::string::npos);
  expect_problem(doc(ann(3, R"(,"segmentation":[[]])")), "short_polygon", "annotations[0].segmentation[0]",
                 "annotation id 3");
}

TEST(CocoValidation, WrongTypes) {
  expect_problem(doc(ann(7, R"(,"image_id":"1")")), "duplicate_field", "annotations[0].image_id", "annotation id 7");
  expect_problem(doc(R"({"id":7,"image_id":"1","category_id":1})"), "wrong_type", "annotations[0].image_id",
                 "annotation id 7", "\"image_id\"");
  expect_problem(doc(R"({"id":7.5,"image_id":1,"category_id":1})"), "wrong_type", "annotations[0].id", "");
  expect_problem(doc(ann(8, R"(,"segmentation":"abc")")), "wrong_type", "annotations[0].segmentation",
                 "annotation id 8");
  expect_problem(doc(ann(8, R"(,"segmentation":[[0,0,"x",1,2,2]])")), "wrong_type",
                 "annotations[0].segmentation[0][2]", "annotation id 8", "\"x\"");
  expect_problem(doc(ann(8, R"(,"segmentation":[5])")), "wrong_type", "annotations[0].segmentation[0]",
                 "annotation id 8");
  expect_problem(doc(ann(9, R"(,"bbox":{"x":1})")), "wrong_type", "annotations[0].bbox", "annotation id 9");
  expect_problem(doc(ann(9, R"(,"area":"big")")), "wrong_type", "annotations[0].area", "annotation id 9");
  expect_problem(doc(ann(1), R"({"id":1,"width":10,"height":10,"file_name":3})"), "wrong_type",
                 "images[0].file_name", "image id 1");
  expect_problem(doc(ann(1), kImage, R"({"id":1,"name":["x"]})"), "wrong_type", "categories[0].name",
                 "category id 1");
  expect_problem(doc("5"), "wrong_type", "annotations[0]", "");
  // Top level and arrays.
  EXPECT_EQ(strict_error("[1,2]").reason(), "wrong_type");
  EXPECT_EQ(strict_error(R"({"images":{},"annotations":[],"categories":[]})").reason(), "wrong_type");
}

TEST(CocoValidation, MissingFields) {
  expect_problem(doc(ann(1), R"({"id":4,"width":10,"height":10})"), "missing_field", "images[0]", "image id 4");
  expect_problem(doc(ann(1), R"({"width":10,"height":10,"file_name":"a"})"), "missing_field", "images[0]",
                 "image without id");
  expect_problem(doc(R"({"id":6,"image_id":1})"), "missing_field", "annotations[0]", "annotation id 6");
  expect_problem(doc(ann(1), kImage, R"({"id":2})"), "missing_field", "categories[0]", "category id 2");
  EXPECT_EQ(strict_error(R"({"images":[],"annotations":[]})").reason(), "missing_field");
}

TEST(CocoValidation, DuplicateIds) {
  const std::string two_images = std::string(kImage) + "," + kImage;
  expect_problem(doc(ann(1), two_images), "duplicate_id", "images[1]", "image id 1");
  const std::string two_cats = std::string(kCategory) + ",{\"id\":1,\"name\":\"other\"}";
  expect_problem(doc(ann(1), kImage, two_cats), "duplicate_id", "categories[1]", "category id 1");
  const std::string j = doc(ann(3) + "," + ann(4) + "," + ann(3));
  expect_problem(j, "duplicate_id", "annotations[2]", "annotation id 3");
  // The byte offset is that of the second record with the id.
  EXPECT_EQ(strict_error(j).where().byte_offset, static_cast<int64_t>(j.rfind(ann(3))));
}

TEST(CocoValidation, UnknownReferences) {
  expect_problem(doc(ann(1) + R"(,{"id":2,"image_id":99,"category_id":1})"), "unknown_image", "annotations[1]",
                 "annotation id 2", R"({"id":2,)");
  expect_problem(doc(R"({"id":2,"image_id":1,"category_id":77})"), "unknown_category", "annotations[0]",
                 "annotation id 2");
}

TEST(CocoValidation, RleChecks) {
  const std::string good = R"(,"iscrowd":1,"segmentation":{"counts":[3,7,5,5],"size":[4,5]})";
  const CocoDataset ds = parse_coco(doc(ann(1, good), kImage4x5), "rle.json");
  ASSERT_EQ(ds.annotations[0].seg_kind, SegmentationKind::kRleCounts);
  EXPECT_EQ(ds.annotations[0].rle_height, 4u);
  EXPECT_EQ(ds.annotations[0].rle_width, 5u);
  expect_problem(doc(ann(2, R"(,"segmentation":{"counts":[3,7,5,6],"size":[4,5]})")), "rle_sum",
                 "annotations[0].segmentation.counts", "annotation id 2");
  expect_problem(doc(ann(2, R"(,"segmentation":{"counts":"375O","size":[4,5]})")), "rle_sum",
                 "annotations[0].segmentation.counts", "annotation id 2");
  expect_problem(doc(ann(2, R"(,"segmentation":{"counts":[20],"size":[-4,-5]})")), "bad_value",
                 "annotations[0].segmentation.size", "annotation id 2");
  expect_problem(doc(ann(2, R"(,"segmentation":{"counts":[20],"size":[4,5,1]})")), "bad_value",
                 "annotations[0].segmentation.size", "annotation id 2");
  expect_problem(doc(ann(2, R"(,"segmentation":{"counts":[20]})")), "missing_field", "annotations[0].segmentation",
                 "annotation id 2");
  expect_problem(doc(ann(2, R"(,"segmentation":{"counts":[-1,21],"size":[4,5]})")), "bad_value",
                 "annotations[0].segmentation.counts[0]", "annotation id 2");
  expect_problem(doc(ann(2, R"(,"segmentation":{"counts":"37\u0001","size":[4,5]})")), "bad_value",
                 "annotations[0].segmentation.counts", "annotation id 2");
}

// Compressed RLE: counts [3,7,5,5] on a 4x5 image encode (pycocotools
// rleToString) as "375N" (the 4th count is stored as the difference -2).
TEST(CocoValidation, CompressedRle) {
  const CocoDataset ds =
      parse_coco(doc(ann(1, R"(,"segmentation":{"size":[4,5],"counts":"375N"})"), kImage4x5), "c.json");
  const AnnotationRecord& a = ds.annotations[0];
  ASSERT_EQ(a.seg_kind, SegmentationKind::kRleString);
  EXPECT_EQ(ds.rle_string(a), "375N");
  EXPECT_EQ(a.rle_height, 4u);
  EXPECT_EQ(a.rle_width, 5u);
  // Backslash is a legal RLE character (code 92): escaped in JSON, stored unescaped.
  // "\\" = 44 = more bit + 12; "0" ends it: 12 | (0 << 5) = 12; then "8" = 8: 12 + 8 = 20 = 4 x 5.
  const CocoDataset ds2 =
      parse_coco(doc(ann(1, R"(,"segmentation":{"size":[4,5],"counts":"\\08"})"), kImage4x5), "c.json");
  EXPECT_EQ(ds2.rle_string(ds2.annotations[0]), "\\08");
}

TEST(CocoValidation, BadValues) {
  expect_problem(doc(ann(3, R"(,"area":-1)")), "bad_value", "annotations[0].area", "annotation id 3", "\"area\"");
  expect_problem(doc(ann(3, R"(,"area":1e400)")), "bad_value", "annotations[0].area", "annotation id 3");
  expect_problem(doc(ann(3, R"(,"bbox":[0,0,-2,3])")), "bad_value", "annotations[0].bbox", "annotation id 3");
  expect_problem(doc(ann(3, R"(,"bbox":[0,0,2])")), "bad_value", "annotations[0].bbox", "annotation id 3");
  expect_problem(doc(ann(3, R"(,"iscrowd":2)")), "bad_value", "annotations[0].iscrowd", "annotation id 3");
  expect_problem(doc(ann(1), R"({"id":1,"width":-10,"height":10,"file_name":"a"})"), "bad_image_size",
                 "images[0].width", "image id 1");
  expect_problem(doc(ann(1), R"({"id":1,"width":10,"height":1e3,"file_name":"a"})"), "wrong_type",
                 "images[0].height", "image id 1");
}

TEST(CocoValidation, MalformedJsonAlwaysThrowsWithOffset) {
  for (ErrorPolicy policy : {ErrorPolicy::kStrict, ErrorPolicy::kSkip}) {
    LoadOptions opt;
    opt.policy = policy;
    const std::string missing_comma = doc(ann(1) + R"(,{"id":2 "image_id":1,"category_id":1})");
    const std::string truncated = doc(ann(1)).substr(0, 60);
    const std::string trailing = doc(ann(1)) + " x";
    const std::string bad_sep = doc(ann(1) + " " + ann(2));
    const std::string trailing_comma = doc(ann(1) + ",");
    const std::string bad_number = doc(ann(1, R"(,"area":12abc)"));
    const std::string bad_extra = doc(ann(1, R"(,"note":[1,,2])"));
    const std::string bad_info = R"({"info":{"a":tru},)" + doc(ann(1)).substr(1);
    const std::string bad_rle = doc(ann(1, R"(,"segmentation":{"size":[1,1],"counts":[0,1],"x":[1,,2]})"));
    for (const std::string& j :
         {missing_comma, truncated, trailing, bad_sep, trailing_comma, bad_number, bad_extra, bad_info, bad_rle}) {
      SCOPED_TRACE(j);
      try {
        parse_coco(j, "broken.json", opt);
        ADD_FAILURE() << "no error";
      } catch (const InputError& e) {
        EXPECT_EQ(e.reason(), "malformed_json") << e.what();
        EXPECT_GE(e.where().byte_offset, 0) << e.what();
        EXPECT_LE(e.where().byte_offset, static_cast<int64_t>(j.size()));
        EXPECT_NE(std::string(e.what()).find("broken.json"), std::string::npos);
      }
    }
    // The offset points into the broken record.
    try {
      parse_coco(missing_comma, "broken.json", opt);
    } catch (const InputError& e) {
      EXPECT_GE(e.where().byte_offset, static_cast<int64_t>(missing_comma.find("{\"id\":2")));
      EXPECT_EQ(e.where().path, "annotations[1]");
    }
  }
}

TEST(CocoValidation, KeysInAnyOrderAndUnknownFields) {
  const std::string j = R"({"categories":[{"id":0,"name":"bg","color":[1,2,3]}],
    "annotations":[{"id":1,"image_id":0,"category_id":0,"score":0.5,"attrs":{"a":[null,true,"x\"y"]},
                    "bbox":[1,2,3,4],"area":12}],
    "type":"instances",
    "images":[{"id":0,"width":3,"height":4,"file_name":"sub/dir/x.png","date":null}],
    "info":{"v":1}})";
  const CocoDataset ds = parse_coco(j, "order.json");
  ASSERT_EQ(ds.annotations.size(), 1u);
  EXPECT_EQ(ds.annotations[0].seg_kind, SegmentationKind::kNone);
  EXPECT_EQ(ds.annotations[0].image_index, 0u);
  EXPECT_EQ(ds.annotations[0].extra.size, 0u);
  EXPECT_EQ(ds.top_level_extra.size, 0u);

  LoadOptions keep;
  keep.keep_extra_fields = true;
  const CocoDataset kept = parse_coco(j, "order.json", keep);
  EXPECT_EQ(kept.str(kept.annotations[0].extra), R"("score":0.5,"attrs":{"a":[null,true,"x\"y"]})");
  EXPECT_EQ(kept.str(kept.images[0].extra), R"("date":null)");
  EXPECT_EQ(kept.str(kept.categories[0].extra), R"("color":[1,2,3])");
  EXPECT_EQ(kept.str(kept.top_level_extra), R"("type":"instances","info":{"v":1})");
  // null segmentation = none.
  const CocoDataset n = parse_coco(doc(ann(1, R"(,"segmentation":null)")), "n.json");
  EXPECT_EQ(n.annotations[0].seg_kind, SegmentationKind::kNone);
}

TEST(CocoValidation, SkipPolicyCountsByReason) {
  const std::string anns = ann(1) + "," +                                   // good
                           ann(2, R"(,"segmentation":[[1,2,3,4,5]])") + "," +  // odd
                           ann(3, R"(,"segmentation":[[1,2,3,4]])") + "," +    // short
                           R"({"id":4,"image_id":99,"category_id":1})" + "," +  // unknown image
                           R"({"id":5,"image_id":1,"category_id":99})" + "," +  // unknown category
                           ann(1) + "," +                                       // duplicate id
                           R"({"id":6,"image_id":2,"category_id":1})" + "," +   // image 2 was skipped
                           R"({"id":7,"category_id":1})" + "," +                // missing image_id
                           ann(8, R"(,"segmentation":[[0,0,1,0,1,1],[0,0,2,0,2,2]],"area":1)");  // good
  const std::string images = std::string(kImage) + R"(,{"id":2,"width":-1,"height":3,"file_name":"b"})";
  LoadOptions opt;
  opt.policy = ErrorPolicy::kSkip;
  const CocoDataset ds = parse_coco(doc(anns, images), "skip.json", opt);
  ASSERT_EQ(ds.annotations.size(), 2u);
  EXPECT_EQ(ds.annotations[0].id, 1);
  EXPECT_EQ(ds.annotations[1].id, 8);
  EXPECT_EQ(ds.images.size(), 1u);
  EXPECT_EQ(ds.skipped.count("odd_polygon"), 1u);
  EXPECT_EQ(ds.skipped.count("short_polygon"), 1u);
  EXPECT_EQ(ds.skipped.count("unknown_image"), 1u);
  EXPECT_EQ(ds.skipped.count("image_skipped"), 1u);
  EXPECT_EQ(ds.skipped.count("unknown_category"), 1u);
  EXPECT_EQ(ds.skipped.count("duplicate_id"), 1u);
  EXPECT_EQ(ds.skipped.count("missing_field"), 1u);
  EXPECT_EQ(ds.skipped.count("bad_image_size"), 1u);
  EXPECT_EQ(ds.skipped.total(), 8u);
  EXPECT_NE(ds.skipped.first_messages().at("odd_polygon").find("annotations[1].segmentation[0]"), std::string::npos);
  // Dropped records leave nothing behind in the pools.
  const AnnotationRecord& a8 = ds.annotations[1];
  ASSERT_EQ(ds.num_parts(a8), 2u);
  EXPECT_EQ(ds.polygon(a8, 1)[4], 2.0);
  EXPECT_EQ(ds.part_offsets.size(), 4u);
  EXPECT_EQ(ds.coords.size(), 18u);
  ASSERT_EQ(ds.annotations_of(0).size(), 2u);
}

TEST(CocoValidation, EmptyArraysWhitespaceAndBom) {
  const CocoDataset e = parse_coco(" {\"images\" : [ ] ,\"annotations\":[],\"categories\":[\n]}\n", "e.json");
  EXPECT_TRUE(e.images.empty());
  EXPECT_TRUE(e.annotations.empty());
  EXPECT_TRUE(e.image_annotations.empty());
  const std::string pretty =
      "\xEF\xBB\xBF{\r\n\t\"categories\": [\r\n\t\t{ \"id\" : 3 , \"name\" : \"a\" }\r\n\t],\r\n"
      "\t\"annotations\": [\r\n\t\t{\r\n\t\t\t\"segmentation\": [\r\n\t\t\t\t[ 1.5, 2,\r\n 3, 4e0, 5E-1, -0 ]\r\n"
      "\t\t\t],\r\n\t\t\t\"id\": 9, \"image_id\": 4, \"category_id\": 3\r\n\t\t}\r\n\t],\r\n"
      "\t\"images\": [ { \"id\": 4, \"width\": 2, \"height\": 2, \"file_name\": \"x.png\" } ]\r\n}\r\n";
  for (size_t block : {16u, 29u, 1u << 20}) {
    LoadOptions opt;
    opt.block_size = block;
    const CocoDataset ds = parse_coco(pretty, "pretty.json", opt);
    ASSERT_EQ(ds.annotations.size(), 1u);
    const Span<const double> p = ds.polygon(ds.annotations[0], 0);
    ASSERT_EQ(p.size(), 6u);
    EXPECT_EQ(p[0], 1.5);
    EXPECT_EQ(p[3], 4.0);
    EXPECT_EQ(p[4], 0.5);
    EXPECT_EQ(ds.annotations[0].category_index, 0u);
  }
}

// ------------------------------------------------------------ issue 10
// Image sizes, RLE sizes, coordinate ranges: what used to load silently and
// give wrong masks, wrong AP or overflowing pixel counts later.

namespace {

LoadOptions skip_policy() {
  LoadOptions opt;
  opt.policy = ErrorPolicy::kSkip;
  return opt;
}

}  // namespace

TEST(CocoValidationRegression, ZeroWidthImageIsRefusedNotRasterisedAsEmpty) {
  const std::string zero = R"({"id":1,"width":0,"height":422,"file_name":"a.jpg"})";
  expect_problem(doc(ann(1), zero), "bad_image_size", "images[0].width", "image id 1", "\"width\"");
  EXPECT_NE(std::string(strict_error(doc(ann(1), zero)).what()).find("got 0"), std::string::npos);
  expect_problem(doc(ann(1), R"({"id":1,"width":10,"height":-3,"file_name":"a.jpg"})"), "bad_image_size",
                 "images[0].height", "image id 1", "\"height\"");
  expect_problem(doc(ann(1), R"({"id":1,"width":4294967297,"height":1,"file_name":"a.jpg"})"), "bad_image_size",
                 "images[0].width", "image id 1");
  // Skip: the image and its annotations are dropped and counted.
  const CocoDataset ds = parse_coco(doc(ann(1) + "," + ann(2), std::string(kImage) + "," +
                                                                 R"({"id":2,"width":0,"height":5,"file_name":"b"})"),
                                    "zero.json", skip_policy());
  EXPECT_EQ(ds.images.size(), 1u);
  EXPECT_EQ(ds.annotations.size(), 2u);
  const CocoDataset dropped = parse_coco(
      doc(ann(1) + R"(,{"id":2,"image_id":2,"category_id":1,"segmentation":[[0,0,4,0,4,4]]})",
          std::string(kImage) + R"(,{"id":2,"width":0,"height":5,"file_name":"b"})"),
      "zero.json", skip_policy());
  ASSERT_EQ(dropped.images.size(), 1u);
  ASSERT_EQ(dropped.annotations.size(), 1u);
  EXPECT_EQ(dropped.annotations[0].id, 1);
  EXPECT_EQ(dropped.skipped.count("bad_image_size"), 1u);
  EXPECT_EQ(dropped.skipped.count("image_skipped"), 1u);
  EXPECT_NE(dropped.skipped.first_messages().at("image_skipped").find("annotation id 2"), std::string::npos);
}

TEST(CocoValidationRegression, HugeImageSizeIsCheckedAgainstThePixelLimit) {
  // 100000 x 100000 = 1e10 pixels overflows 32 bits (1410065408).
  const std::string huge = R"({"id":1,"width":100000,"height":100000,"file_name":"a.jpg"})";
  const std::string j = doc(ann(1), huge);
  expect_problem(j, "pixel_limit", "images[0].width", "image id 1", "\"width\"");
  const std::string msg = strict_error(j).what();
  EXPECT_NE(msg.find("10000000000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("178956970"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("1410065408"), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 200u) << msg;
  // The default is the decode stage's (decode.max_pixels); 0 lifts it.
  EXPECT_EQ(LoadOptions{}.max_pixels, 178956970);
  EXPECT_EQ(kDefaultMaxPixels, 178956970);
  LoadOptions no_limit;
  no_limit.max_pixels = 0;
  EXPECT_EQ(parse_coco(j, "huge.json", no_limit).images.at(0).width, 100000);
  LoadOptions small;
  small.max_pixels = 100;
  EXPECT_EQ(parse_coco(doc(ann(1)), "ok.json", small).images.size(), 1u);  // 10 x 10 = 100: at the limit
  small.max_pixels = 99;
  EXPECT_EQ(strict_error(doc(ann(1)), small).reason(), "pixel_limit");
}

TEST(CocoValidationRegression, RleSizeDisagreeingWithItsImageIsRefused) {
  // A 4x5 RLE on a 10x10 image: the mask would silently have another shape.
  const std::string rle = R"(,"segmentation":{"counts":[3,7,5,5],"size":[4,5]})";
  const std::string j = doc(ann(1) + "," + ann(2, rle));
  expect_problem(j, "rle_size_mismatch", "annotations[1].segmentation.size", "annotation id 2", ann(2, rle));
  const std::string msg = strict_error(j).what();
  EXPECT_NE(msg.find("[4, 5]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[10, 10]"), std::string::npos) << msg;
  // [w, h] instead of [h, w] is a mismatch too.
  EXPECT_EQ(strict_error(doc(ann(2, rle), R"({"id":1,"width":4,"height":5,"file_name":"a"})")).reason(),
            "rle_size_mismatch");
  // The compressed form, and the images array after the annotations.
  const std::string late = R"({"annotations":[)" + ann(3, R"(,"segmentation":{"counts":"375N","size":[4,5]})") +
                           R"(],"categories":[)" + kCategory + R"(],"images":[)" + kImage + "]}";
  EXPECT_EQ(strict_error(late).reason(), "rle_size_mismatch");
  // Skip: the annotation is dropped and counted, the rest stays.
  const CocoDataset ds = parse_coco(j, "mismatch.json", skip_policy());
  ASSERT_EQ(ds.annotations.size(), 1u);
  EXPECT_EQ(ds.annotations[0].id, 1);
  EXPECT_EQ(ds.skipped.count("rle_size_mismatch"), 1u);
  EXPECT_EQ(ds.annotations_of(0).size(), 1u);
}

TEST(CocoValidationRegression, PolygonCoordinate1e308IsRefusedWithAShortMessage) {
  const std::string j = doc(ann(4, R"(,"segmentation":[[0,0,1e308,0,4,4]])"));
  expect_problem(j, "polygon_range", "annotations[0].segmentation[0][2]", "annotation id 4", "1e308");
  const std::string msg = strict_error(j).what();
  EXPECT_NE(msg.find("1e+308"), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 200u) << msg;  // never the 309 digits of std::to_string(1e308)
  expect_problem(doc(ann(4, R"(,"segmentation":[[0,0,4,0,4,-100000001]])")), "polygon_range",
                 "annotations[0].segmentation[0][5]", "annotation id 4", "-100000001");
  // 1e8 itself is the rasteriser's limit and loads.
  EXPECT_EQ(parse_coco(doc(ann(4, R"(,"segmentation":[[0,0,1e8,0,4,4]])")), "ok.json").annotations.size(), 1u);
  const CocoDataset ds = parse_coco(doc(ann(1) + "," + ann(4, R"(,"segmentation":[[0,0,1e308,0,4,4]])")),
                                    "range.json", skip_policy());
  ASSERT_EQ(ds.annotations.size(), 1u);
  EXPECT_EQ(ds.skipped.count("polygon_range"), 1u);
}

TEST(CocoValidationRegression, HugeBboxAndAreaDoNotReachTable2OrEval) {
  // Finite in JSON, but w * h and x + w overflow to inf downstream.
  expect_problem(doc(ann(3, R"(,"bbox":[0,0,1e308,1e308])")), "bad_value", "annotations[0].bbox", "annotation id 3",
                 "\"bbox\"");
  EXPECT_NE(std::string(strict_error(doc(ann(3, R"(,"bbox":[0,0,1e308,1])"))).what()).find("1e+308"),
            std::string::npos);
  expect_problem(doc(ann(3, R"(,"area":1e308)")), "bad_value", "annotations[0].area", "annotation id 3", "\"area\"");
  // NaN is not a JSON number: named with its place.
  const std::string nan = doc(ann(3, R"(,"area":NaN)"));
  const InputError e = strict_error(nan);
  EXPECT_EQ(e.reason(), "wrong_type") << e.what();
  EXPECT_EQ(e.where().path, "annotations[0].area") << e.what();
  EXPECT_GE(e.where().byte_offset, 0) << e.what();
}

TEST(CocoValidationRegression, CompressedRleCountBeyond32BitsIsRefusedAtLoad) {
  // "PPPPPP8" is one count of 2^33 (six 5-bit groups of 0 with the more bit,
  // then 8 << 30): it sums to the 65536 x 131072 image without a pixel
  // limit, but no 32-bit run (pycocotools' or ours) holds it.
  LoadOptions opt;
  opt.max_pixels = 0;
  const std::string j = doc(ann(2, R"(,"segmentation":{"counts":"PPPPPP8","size":[65536,131072]})"),
                            R"({"id":1,"width":131072,"height":65536,"file_name":"a.jpg"})");
  const InputError e = strict_error(j, opt);
  EXPECT_EQ(e.reason(), "bad_value") << e.what();
  EXPECT_EQ(e.where().path, "annotations[0].segmentation.counts");
  EXPECT_NE(std::string(e.what()).find("2^32-1"), std::string::npos) << e.what();
}

TEST(CocoValidationRegression, AnnotationLocationSurvivesSkippedRecords) {
  // Errors found after loading (rasterising an empty polygon list) name the
  // record's byte offset and its index in the file, not in the array kept.
  const std::string bad = R"({"id":9,"image_id":1,"category_id":1,"segmentation":[]})";
  const std::string j = doc(ann(1, R"(,"segmentation":[[1,2,3]])") + "," + ann(2) + "," + bad);
  const CocoDataset ds = parse_coco(j, "late.json", skip_policy());
  ASSERT_EQ(ds.annotations.size(), 2u);
  ASSERT_EQ(ds.annotation_sources.size(), 2u);
  const Location loc = ds.annotation_location(ds.annotations[1], ".segmentation");
  EXPECT_EQ(loc.file, "late.json");
  EXPECT_EQ(loc.path, "annotations[2].segmentation");
  EXPECT_EQ(loc.byte_offset, static_cast<int64_t>(j.find(bad)));
  EXPECT_EQ(loc.record, "annotation id 9");
  // A record edited after loading keeps only its id.
  CocoDataset edited = ds;
  edited.annotations[1].id = 77;
  const Location e = edited.annotation_location(edited.annotations[1]);
  EXPECT_EQ(e.byte_offset, -1);
  EXPECT_EQ(e.path, "");
  EXPECT_EQ(e.record, "annotation id 77");
}
