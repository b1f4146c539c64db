// Helpers shared by the fuzz targets: reading sizes and numbers off the
// front of libFuzzer's byte string.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pasteflow::fuzz {

/// Consumes bytes from the front of the input; reads past the end give 0.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t u16() {
    const uint16_t lo = byte();
    return static_cast<uint16_t>(lo | (byte() << 8));
  }
  /// What is left, as text.
  std::string_view rest() const {
    return std::string_view(reinterpret_cast<const char*>(data_) + pos_, size_ - pos_);
  }
  size_t remaining() const { return size_ - pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace pasteflow::fuzz
