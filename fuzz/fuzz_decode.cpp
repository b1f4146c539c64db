// Image decode stage (stages::Decoder::decode_bytes and the header parser).
// Input: the image file's bytes. The pixel limit is lowered to 4 Mpx so a
// header claiming a huge image is refused before any allocation (as
// decode.max_pixels does for users) instead of exhausting the fuzzer's
// memory. Both colour modes and 8/16-bit are tried; whatever decodes must
// have the header's size.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "pasteflow/core/error.hpp"
#include "pasteflow/stages/decode.hpp"

using namespace pasteflow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Span<const uint8_t> bytes(data, size);
  stages::ImageHeader header;
  try {
    header = stages::parse_image_header(bytes, "fuzz.img");
  } catch (const InputError&) {
    return 0;
  }
  if (header.width < 0 || header.height < 0 || header.header_end < 0 || uint64_t(header.header_end) > size) {
    std::abort();
  }
  static const stages::Decoder decoders[] = {
      stages::Decoder({int64_t(1) << 22, "rgb", true}),
      stages::Decoder({int64_t(1) << 22, "keep", false}),
  };
  for (const stages::Decoder& decoder : decoders) {
    try {
      const cv::Mat image = decoder.decode_bytes(bytes, "fuzz.img");
      if (image.cols != header.width || image.rows != header.height) std::abort();
    } catch (const InputError&) {
    }
  }
  return 0;
}
