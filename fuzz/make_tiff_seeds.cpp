// Seed corpus of fuzz_tiff: small TIFFs of many layouts written by libtiff
// (tiled and striped, classic and BigTIFF, none / LZW / Deflate / ZSTD /
// PackBits / JPEG, predictors, 8 / 16 / 32-bit float, 1 / 3 / 4 samples,
// planar contiguous and separate, palette, min-is-white, a two-level
// pyramid). Usage: make_tiff_seeds OUT_DIR (writes OUT_DIR/fuzz_tiff/).
#include <tiffio.h>

#include <filesystem>
#include <iostream>
#include <string>

#include "raster/tiff_writer.hpp"

using pasteflow::testing::TiffSpec;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_tiff_seeds OUT_DIR\n";
    return 2;
  }
  TIFFSetWarningHandler(nullptr);
  const std::filesystem::path out = std::filesystem::path(argv[1]) / "fuzz_tiff";
  std::filesystem::create_directories(out);
  int n = 0;
  auto emit = [&](TiffSpec s, bool smooth = false) {
    s.width = 21;
    s.height = 19;
    s.tile_w = 16;
    s.tile_h = 16;
    s.rows_per_strip = s.compression == COMPRESSION_JPEG ? 16 : 5;
    const std::string path = (out / ("seed_" + std::to_string(n++) + ".tif")).string();
    pasteflow::testing::write_tiff(path, s, pasteflow::testing::make_pixels(s, smooth));
  };
  for (bool tiled : {true, false}) {
    for (int compression : {COMPRESSION_NONE, COMPRESSION_LZW, COMPRESSION_ADOBE_DEFLATE, COMPRESSION_ZSTD,
                            COMPRESSION_PACKBITS}) {
      TiffSpec s;
      s.tiled = tiled;
      s.compression = compression;
      s.big = compression == COMPRESSION_ZSTD;
      emit(s);
      s.spp = 3;
      s.planar = compression == COMPRESSION_LZW ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG;
      if (compression != COMPRESSION_NONE && compression != COMPRESSION_PACKBITS) s.predictor = PREDICTOR_HORIZONTAL;
      emit(s);
      s.spp = 4;
      s.bits = 16;
      emit(s);
      s.spp = 1;
      s.bits = 32;
      s.sample_format = SAMPLEFORMAT_IEEEFP;
      if (s.predictor != 1) s.predictor = PREDICTOR_FLOATINGPOINT;
      emit(s);
    }
    TiffSpec j;
    j.tiled = tiled;
    j.compression = COMPRESSION_JPEG;
    j.spp = 3;
    j.ycbcr = true;
    emit(j, true);
    TiffSpec w;
    w.tiled = tiled;
    w.photometric = PHOTOMETRIC_MINISWHITE;
    emit(w);
    TiffSpec p;
    p.tiled = tiled;
    p.photometric = PHOTOMETRIC_PALETTE;
    p.colormap.resize(3 * 256);
    for (int i = 0; i < 3 * 256; ++i) p.colormap[i] = static_cast<uint16_t>(i * 85);
    emit(p);
  }
  // A pyramid: 32 x 24 and its 16 x 12 overview (subfile type 1).
  {
    const std::string path = (out / "seed_pyramid.tif").string();
    TIFF* tif = TIFFOpen(path.c_str(), "w");
    for (int level = 0; level < 2; ++level) {
      TiffSpec s;
      s.width = 32 >> level;
      s.height = 24 >> level;
      s.tile_w = s.tile_h = 16;
      s.compression = COMPRESSION_ADOBE_DEFLATE;
      s.subfile_type = level == 0 ? 0 : 1;
      pasteflow::testing::write_directory(tif, s, pasteflow::testing::make_pixels(s));
      TIFFWriteDirectory(tif);
    }
    TIFFClose(tif);
  }
  std::cout << "fuzz_tiff: " << n + 1 << " seeds in " << out << "\n";
  return 0;
}
