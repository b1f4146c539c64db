// pycocotools.mask's C layer (_mask.pyx) over pasteflow's RLE codec
// (pasteflow/mask/rle.hpp, bit-exact with cocoapi's maskApi.c). The
// submodule _pasteflow._mask takes lists of RLE dicts / arrays as the public
// functions of pasteflow/mask.py hand them over (that file dispatches on the
// argument forms exactly as pycocotools' mask.py / _mask.pyx do).
//
// Python objects are read and built with the GIL held; every loop over
// masks or pixels runs with the GIL released.
//
// Errors: wrong Python types -> TypeError, wrong shapes / sizes / ranges ->
// ValueError, a missing dict key -> KeyError, malformed mask data (bad
// compressed string, counts not adding up to h * w, short / odd polygons,
// masks of different sizes in merge) -> pasteflow.InputError naming the
// mask's index.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/core/span.hpp"
#include "pasteflow/mask/rle.hpp"

namespace py = pybind11;

namespace pasteflow::python {

namespace {

namespace pm = pasteflow::mask;

/// A compressed RLE as read from a Python dict (before decoding).
struct RleText {
  std::string counts;
  uint32_t h = 0, w = 0;
};

std::string item_name(const char* what, size_t i) { return std::string(what) + "[" + std::to_string(i) + "]"; }

/// A Python int in 0 .. 2^32-1 (numpy integers included).
uint32_t to_dim(py::handle v, const std::string& what) {
  if (PyBool_Check(v.ptr()) || !PyIndex_Check(v.ptr())) {
    throw py::type_error(what + " must be an integer, not " + std::string(py::str(py::type::of(v).attr("__name__"))));
  }
  const py::int_ i = py::reinterpret_steal<py::int_>(PyNumber_Index(v.ptr()));
  if (!i) throw py::error_already_set();
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow != 0 || x < 0 || x > static_cast<long long>(UINT32_MAX)) {
    throw py::value_error(what + " must be in 0..2^32-1, got " + std::string(py::str(static_cast<py::handle>(i))));
  }
  return static_cast<uint32_t>(x);
}

/// h * w must fit pycocotools' 32-bit runs.
void check_size(uint32_t h, uint32_t w, const std::string& what) {
  if (static_cast<uint64_t>(h) * w > pm::kMaxPixels) {
    throw InputError("mask_too_large", what + ": a mask of " + std::to_string(h) + "x" + std::to_string(w) +
                                           " has more than 2^32-1 pixels (pycocotools' RLE runs are 32-bit)");
  }
}

/// {"size": [h, w], "counts": b"..." or "..."}, as pycocotools' _frString
/// reads it (str counts are UTF-8 encoded).
RleText read_rle(py::handle obj, const std::string& what) {
  if (!py::isinstance<py::dict>(obj)) {
    throw py::type_error(what + ": expected an RLE dict {'size': [h, w], 'counts': bytes}, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  const py::dict d = py::reinterpret_borrow<py::dict>(obj);
  if (!d.contains("counts")) throw py::key_error(what + ": RLE dict has no 'counts'");
  if (!d.contains("size")) throw py::key_error(what + ": RLE dict has no 'size'");
  RleText r;
  const py::object counts = d["counts"];
  if (py::isinstance<py::bytes>(counts)) {
    r.counts = counts.cast<std::string>();
  } else if (py::isinstance<py::str>(counts)) {
    r.counts = counts.cast<std::string>();  // UTF-8, as str.encode()
  } else if (py::isinstance<py::list>(counts) || py::isinstance<py::tuple>(counts) ||
             py::isinstance<py::array>(counts)) {
    throw py::type_error(what + ": 'counts' is uncompressed (a list); compress it with frPyObjects(rle, h, w) first");
  } else {
    throw py::type_error(what + ": 'counts' must be bytes or str, got " +
                         std::string(py::str(py::type::of(counts).attr("__name__"))));
  }
  const py::object size = d["size"];
  if (!py::isinstance<py::sequence>(size) || py::isinstance<py::str>(size) || py::len(size) != 2) {
    throw py::value_error(what + ": 'size' must be [h, w]");
  }
  const py::sequence s = py::reinterpret_borrow<py::sequence>(size);
  r.h = to_dim(s[0], what + "['size'][0]");
  r.w = to_dim(s[1], what + "['size'][1]");
  return r;
}

std::vector<RleText> read_rles(py::handle objs, const char* what) {
  if (!py::isinstance<py::list>(objs) && !py::isinstance<py::tuple>(objs)) {
    throw py::type_error(std::string(what) + ": expected a list of RLE dicts");
  }
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(objs);
  const size_t n = py::len(seq);
  std::vector<RleText> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(read_rle(seq[i], item_name(what, i)));
  return out;
}

/// Rethrows a codec error with the mask's place in front of its message.
[[noreturn]] void rethrow_at(const InputError& e, const std::string& what) {
  throw InputError(e.reason(), what + ": " + e.detail(), e.where());
}

/// Decodes the compressed strings (GIL released by the caller).
std::vector<pm::Rle> decode_texts(const std::vector<RleText>& texts, const char* what) {
  std::vector<pm::Rle> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    try {
      check_size(texts[i].h, texts[i].w, "mask");
      out.push_back(pm::from_string(texts[i].counts, texts[i].h, texts[i].w));
    } catch (const InputError& e) {
      rethrow_at(e, item_name(what, i));
    }
  }
  return out;
}

std::vector<pm::Rle> read_and_decode(py::handle objs, const char* what) {
  const std::vector<RleText> texts = read_rles(objs, what);
  py::gil_scoped_release release;
  return decode_texts(texts, what);
}

/// pycocotools' _toString: {'size': [h, w], 'counts': b'...'}.
py::dict rle_dict(uint32_t h, uint32_t w, const std::string& counts) {
  py::dict d;
  py::list size;
  size.append(h);
  size.append(w);
  d["size"] = size;
  d["counts"] = py::bytes(counts);
  return d;
}

/// (size, compressed string) of each mask, built with the GIL released.
using Compressed = std::vector<std::pair<std::array<uint32_t, 2>, std::string>>;

py::list rle_dicts(const Compressed& rles) {
  py::list out;
  for (const auto& [hw, s] : rles) out.append(rle_dict(hw[0], hw[1], s));
  return out;
}

Compressed compress(const std::vector<pm::Rle>& rles) {
  Compressed out;
  out.reserve(rles.size());
  for (const pm::Rle& r : rles) out.push_back({{r.h, r.w}, pm::to_string(r)});
  return out;
}

// ------------------------------------------------------------------ encode

/// rleEncode over a [h, w, n] uint8 / bool array of any strides: runs in
/// column-major pixel order (x outer, y inner), starting with zeros;
/// nonzero = 1.
py::list encode(const py::array& a) {
  if (a.ndim() != 3) throw py::value_error("encode: expected a [h, w, n] array, got " + std::to_string(a.ndim()) + " dimensions");
  const char kind = a.dtype().kind();
  if (a.itemsize() != 1 || (kind != 'u' && kind != 'b')) {
    throw py::value_error("encode: expected a uint8 (or bool) array, got dtype " + std::string(py::str(a.dtype())));
  }
  const auto h64 = static_cast<uint64_t>(a.shape(0)), w64 = static_cast<uint64_t>(a.shape(1));
  const auto n = static_cast<size_t>(a.shape(2));
  if (h64 > UINT32_MAX || w64 > UINT32_MAX) throw py::value_error("encode: mask height and width must be below 2^32");
  const auto h = static_cast<uint32_t>(h64), w = static_cast<uint32_t>(w64);
  check_size(h, w, "encode");
  const ptrdiff_t sh = a.strides(0), sw = a.strides(1), sn = a.strides(2);
  const auto* base = static_cast<const uint8_t*>(a.data());
  std::vector<pm::Rle> rles(n);
  {
    py::gil_scoped_release release;
    for (size_t i = 0; i < n; ++i) {
      pm::Rle& r = rles[i];
      r.h = h;
      r.w = w;
      uint8_t p = 0;
      uint32_t c = 0;
      for (uint32_t x = 0; x < w; ++x) {
        const uint8_t* col = base + static_cast<ptrdiff_t>(i) * sn + static_cast<ptrdiff_t>(x) * sw;
        for (uint32_t y = 0; y < h; ++y) {
          const uint8_t v = col[static_cast<ptrdiff_t>(y) * sh] != 0;
          if (v != p) {
            r.counts.push_back(c);
            c = 0;
            p = v;
          }
          ++c;
        }
      }
      r.counts.push_back(c);
    }
  }
  Compressed out;
  {
    py::gil_scoped_release release;
    out = compress(rles);
  }
  return rle_dicts(out);
}

// ------------------------------------------------------------------ decode

/// rleDecode: a Fortran-ordered uint8 [h, w, n] array. The runs are
/// column-major, so mask i is filled linearly at offset i * h * w.
py::array decode(const py::handle& objs) {
  const std::vector<RleText> texts = read_rles(objs, "rleObjs");
  if (texts.empty()) throw py::value_error("decode: no masks to decode (an empty list)");
  const uint32_t h = texts[0].h, w = texts[0].w;
  for (size_t i = 1; i < texts.size(); ++i) {
    if (texts[i].h != h || texts[i].w != w) {
      throw py::value_error("decode: " + item_name("rleObjs", i) + " is " + std::to_string(texts[i].h) + "x" +
                            std::to_string(texts[i].w) + " but rleObjs[0] is " + std::to_string(h) + "x" +
                            std::to_string(w) + " (decode needs masks of one size)");
    }
  }
  std::vector<pm::Rle> rles;
  {
    py::gil_scoped_release release;
    rles = decode_texts(texts, "rleObjs");
  }
  const size_t n = rles.size();
  const size_t hw = static_cast<size_t>(h) * w;
  py::array_t<uint8_t, py::array::f_style> out({static_cast<py::ssize_t>(h), static_cast<py::ssize_t>(w),
                                                static_cast<py::ssize_t>(n)});
  uint8_t* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    for (size_t i = 0; i < n; ++i) {
      uint8_t* p = data + i * hw;
      uint8_t v = 0;
      for (uint32_t c : rles[i].counts) {  // from_string checked that they add up to h * w
        if (c != 0) std::memset(p, v, c);
        p += c;
        v = static_cast<uint8_t>(1 - v);
      }
    }
  }
  return std::move(out);
}

// ------------------------------------------------------------ area, bbox

py::array_t<uint32_t> area(const py::handle& objs) {
  const std::vector<pm::Rle> rles = read_and_decode(objs, "rleObjs");
  py::array_t<uint32_t> out(static_cast<py::ssize_t>(rles.size()));
  uint32_t* a = out.mutable_data();
  // Areas are at most h * w <= 2^32-1: they fit pycocotools' uint32.
  for (size_t i = 0; i < rles.size(); ++i) a[i] = static_cast<uint32_t>(pm::area(rles[i]));
  return out;
}

py::array_t<double> to_bbox(const py::handle& objs) {
  const std::vector<pm::Rle> rles = read_and_decode(objs, "rleObjs");
  py::array_t<double> out({static_cast<py::ssize_t>(rles.size()), py::ssize_t{4}});
  double* b = out.mutable_data();
  for (size_t i = 0; i < rles.size(); ++i) {
    const std::array<double, 4> bb = pm::bbox(rles[i]);
    std::copy(bb.begin(), bb.end(), b + 4 * i);
  }
  return out;
}

// ------------------------------------------------------------------ merge

py::dict merge(const py::handle& objs, bool intersect) {
  const std::vector<RleText> texts = read_rles(objs, "rleObjs");
  pm::Rle merged;
  std::string s;
  {
    py::gil_scoped_release release;
    const std::vector<pm::Rle> rles = decode_texts(texts, "rleObjs");
    merged = pm::merge(rles, intersect);
    s = pm::to_string(merged);
  }
  return rle_dict(merged.h, merged.w, s);
}

// -------------------------------------------------------------------- iou

std::vector<uint8_t> crowd_flags(const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& iscrowd,
                                 size_t n) {
  if (iscrowd.ndim() > 1) throw py::value_error("iou: iscrowd must be a flat list of 0/1");
  const auto k = static_cast<size_t>(iscrowd.size());
  if (k != n) {
    throw py::value_error("iou: iscrowd has " + std::to_string(k) + " entries but there are " + std::to_string(n) +
                          " ground-truth objects");
  }
  return std::vector<uint8_t>(iscrowd.data(), iscrowd.data() + k);
}

/// Row-major m x n -> the Fortran-ordered [m, n] array pycocotools returns
/// (its C code writes o[g * m + d]).
py::array fortran_matrix(const std::vector<double>& rowmajor, size_t m, size_t n) {
  py::array_t<double, py::array::f_style> out({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(n)});
  double* o = out.mutable_data();
  for (size_t d = 0; d < m; ++d) {
    for (size_t g = 0; g < n; ++g) o[g * m + d] = rowmajor[d * n + g];
  }
  return std::move(out);
}

py::array rle_iou(const py::handle& dt, const py::handle& gt,
                  const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& iscrowd) {
  const std::vector<RleText> dtt = read_rles(dt, "dt");
  const std::vector<RleText> gtt = read_rles(gt, "gt");
  const std::vector<uint8_t> crowd = crowd_flags(iscrowd, gtt.size());
  std::vector<double> o;
  {
    py::gil_scoped_release release;
    const std::vector<pm::Rle> d = decode_texts(dtt, "dt");
    const std::vector<pm::Rle> g = decode_texts(gtt, "gt");
    o = pm::iou_matrix(d, g, crowd);
  }
  return fortran_matrix(o, dtt.size(), gtt.size());
}

std::vector<std::array<double, 4>> boxes_of(const py::array_t<double, py::array::c_style | py::array::forcecast>& a,
                                            const char* what) {
  if (a.ndim() != 2 || a.shape(1) != 4) {
    throw py::value_error(std::string(what) + ": boxes must be an [n, 4] array of [x, y, w, h]");
  }
  std::vector<std::array<double, 4>> out(static_cast<size_t>(a.shape(0)));
  const double* p = a.data();
  for (size_t i = 0; i < out.size(); ++i) std::copy(p + 4 * i, p + 4 * i + 4, out[i].begin());
  return out;
}

py::array bbox_iou(const py::array_t<double, py::array::c_style | py::array::forcecast>& dt,
                   const py::array_t<double, py::array::c_style | py::array::forcecast>& gt,
                   const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& iscrowd) {
  const auto d = boxes_of(dt, "dt");
  const auto g = boxes_of(gt, "gt");
  const std::vector<uint8_t> crowd = crowd_flags(iscrowd, g.size());
  std::vector<double> o;
  {
    py::gil_scoped_release release;
    o = pm::box_iou_matrix(d, g, crowd);
  }
  return fortran_matrix(o, d.size(), g.size());
}

// ---------------------------------------------------------------- building

/// rleFrBbox on an [n, 4] array of [x, y, w, h].
py::list fr_bbox(const py::array_t<double, py::array::c_style | py::array::forcecast>& bb, uint32_t h,
                 uint32_t w) {
  const auto boxes = boxes_of(bb, "frPyObjects");
  check_size(h, w, "frPyObjects");
  Compressed out;
  {
    py::gil_scoped_release release;
    std::vector<pm::Rle> rles;
    rles.reserve(boxes.size());
    for (size_t i = 0; i < boxes.size(); ++i) {
      try {
        rles.push_back(pm::from_bbox(boxes[i][0], boxes[i][1], boxes[i][2], boxes[i][3], h, w));
      } catch (const InputError& e) {
        rethrow_at(e, item_name("bbs", i));
      }
    }
    out = compress(rles);
  }
  return rle_dicts(out);
}

/// rleFrPoly for each polygon (one RLE per polygon, as pycocotools' frPoly).
py::list fr_poly(const py::handle& polys, uint32_t h, uint32_t w) {
  if (!py::isinstance<py::list>(polys) && !py::isinstance<py::tuple>(polys)) {
    throw py::type_error("frPyObjects: polygons must be a list of [x0, y0, x1, y1, ...] lists");
  }
  check_size(h, w, "frPyObjects");
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(polys);
  const size_t n = py::len(seq);
  std::vector<std::vector<double>> xy(n);
  for (size_t i = 0; i < n; ++i) {
    const py::object p = seq[i];
    if (py::isinstance<py::str>(p) || py::isinstance<py::bytes>(p) || py::isinstance<py::dict>(p)) {
      throw py::type_error("frPyObjects: " + item_name("poly", i) + " is not a list of numbers");
    }
    auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(p);
    if (!a) {
      PyErr_Clear();
      throw py::type_error("frPyObjects: " + item_name("poly", i) + " is not a list of numbers");
    }
    if (a.ndim() != 1) {
      throw py::value_error("frPyObjects: " + item_name("poly", i) + " must be flat [x0, y0, x1, y1, ...], got " +
                            std::to_string(a.ndim()) + " dimensions");
    }
    xy[i].assign(a.data(), a.data() + a.size());
  }
  Compressed out;
  {
    py::gil_scoped_release release;
    std::vector<pm::Rle> rles;
    rles.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      try {
        rles.push_back(pm::from_polygon(xy[i].data(), xy[i].size(), h, w));
      } catch (const InputError& e) {
        rethrow_at(e, item_name("poly", i));
      }
    }
    out = compress(rles);
  }
  return rle_dicts(out);
}

/// frUncompressedRLE: {'size': [h, w], 'counts': [n0, n1, ...]} -> compressed
/// (the dict's own size, as pycocotools; counts must add up to h * w).
py::list fr_uncompressed(const py::handle& objs) {
  if (!py::isinstance<py::list>(objs) && !py::isinstance<py::tuple>(objs)) {
    throw py::type_error("frPyObjects: expected a list of uncompressed RLE dicts");
  }
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(objs);
  const size_t n = py::len(seq);
  struct Raw {
    std::vector<uint32_t> counts;
    uint32_t h = 0, w = 0;
  };
  std::vector<Raw> raw(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string what = item_name("ucRles", i);
    const py::object obj = seq[i];
    if (!py::isinstance<py::dict>(obj)) throw py::type_error("frPyObjects: " + what + " is not a dict");
    const py::dict d = py::reinterpret_borrow<py::dict>(obj);
    if (!d.contains("counts")) throw py::key_error(what + ": RLE dict has no 'counts'");
    if (!d.contains("size")) throw py::key_error(what + ": RLE dict has no 'size'");
    const py::object size = d["size"];
    if (!py::isinstance<py::sequence>(size) || py::isinstance<py::str>(size) || py::len(size) != 2) {
      throw py::value_error(what + ": 'size' must be [h, w]");
    }
    const py::sequence s = py::reinterpret_borrow<py::sequence>(size);
    raw[i].h = to_dim(s[0], what + "['size'][0]");
    raw[i].w = to_dim(s[1], what + "['size'][1]");
    const py::object counts = d["counts"];
    if (py::isinstance<py::str>(counts) || py::isinstance<py::bytes>(counts) || py::isinstance<py::dict>(counts)) {
      throw py::type_error(what + ": 'counts' must be a list of run lengths");
    }
    auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(counts);
    if (!a) {
      PyErr_Clear();
      throw py::type_error(what + ": 'counts' must be a list of integer run lengths");
    }
    if (a.ndim() > 1) throw py::value_error(what + ": 'counts' must be a flat list");
    const int64_t* c = a.data();
    raw[i].counts.resize(static_cast<size_t>(a.size()));
    for (size_t j = 0; j < raw[i].counts.size(); ++j) {
      if (c[j] < 0 || c[j] > static_cast<int64_t>(UINT32_MAX)) {
        throw py::value_error(what + ": count " + std::to_string(c[j]) + " at index " + std::to_string(j) +
                              " is outside 0..2^32-1");
      }
      raw[i].counts[j] = static_cast<uint32_t>(c[j]);
    }
  }
  Compressed out;
  {
    py::gil_scoped_release release;
    std::vector<pm::Rle> rles;
    rles.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      try {
        check_size(raw[i].h, raw[i].w, "mask");
        rles.push_back(pm::from_counts(Span<const uint32_t>(raw[i].counts), raw[i].h, raw[i].w));
      } catch (const InputError& e) {
        rethrow_at(e, item_name("ucRles", i));
      }
    }
    out = compress(rles);
  }
  return rle_dicts(out);
}

/// A compressed RLE dict checked and normalised to bytes counts.
py::dict normalize(const py::handle& obj) {
  const RleText t = read_rle(obj, "rle");
  {
    py::gil_scoped_release release;
    decode_texts({t}, "rle");
  }
  return rle_dict(t.h, t.w, t.counts);
}

}  // namespace

void bind_mask(py::module_& m) {
  py::module_ sub = m.def_submodule("_mask", "pycocotools._mask over pasteflow's RLE codec (use pasteflow.mask)");
  sub.def("encode", &encode, py::arg("mask"), "[h, w, n] uint8 array (any order) -> list of RLE dicts");
  sub.def("decode", &decode, py::arg("rleObjs"), "list of RLE dicts (one size) -> Fortran uint8 [h, w, n]");
  sub.def("area", &area, py::arg("rleObjs"), "list of RLE dicts -> uint32 [n]");
  sub.def("toBbox", &to_bbox, py::arg("rleObjs"), "list of RLE dicts -> float64 [n, 4] (x, y, w, h)");
  sub.def("merge", &merge, py::arg("rleObjs"), py::arg("intersect") = false, "union / intersection -> RLE dict");
  sub.def("rle_iou", &rle_iou, py::arg("dt"), py::arg("gt"), py::arg("iscrowd"),
          "lists of RLE dicts -> Fortran float64 [m, n]");
  sub.def("bbox_iou", &bbox_iou, py::arg("dt"), py::arg("gt"), py::arg("iscrowd"),
          "[m, 4] and [n, 4] boxes -> Fortran float64 [m, n]");
  sub.def("frBbox", &fr_bbox, py::arg("bb"), py::arg("h"), py::arg("w"), "[n, 4] boxes -> list of RLE dicts");
  sub.def("frPoly", &fr_poly, py::arg("poly"), py::arg("h"), py::arg("w"), "polygons -> list of RLE dicts");
  sub.def("frUncompressedRLE", &fr_uncompressed, py::arg("ucRles"),
          "uncompressed RLE dicts (list counts) -> compressed RLE dicts");
  sub.def("normalize", &normalize, py::arg("rle"), "a compressed RLE dict, checked, with bytes counts");
}

}  // namespace pasteflow::python
