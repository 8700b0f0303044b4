// The only translation unit that sees Python: it exposes the plain C++ code under csrc/core/
// as the extension module segzero_edge._native. No C++ exception crosses into Python except the
// pybind11 argument/ValueError ones raised here on purpose; the core code never throws on input.
// Argument checking with friendly SegZeroError messages happens in the Python wrappers
// (segzero_edge/answer.py, segzero_edge/answer_constraint.py); the checks here are the last guard.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/answer_constraint.hpp"
#include "core/answer_decoder.hpp"
#include "core/answer_stream.hpp"

#ifndef SEGZERO_EDGE_VERSION
#define SEGZERO_EDGE_VERSION "unknown"
#endif

namespace py = pybind11;

namespace {

// Texts above this size are decoded with the GIL released.
constexpr Py_ssize_t kReleaseGilBytes = 16 * 1024;

// UTF-8 view of a Python str. Strings holding lone surrogates (which have no UTF-8 form) are encoded
// with "surrogatepass", the same bytes the decoder's own UTF-8 conventions expect.
struct Utf8 {
  const char* data = nullptr;
  Py_ssize_t size = 0;
  py::object keep;
  explicit Utf8(const py::str& s) {
    data = PyUnicode_AsUTF8AndSize(s.ptr(), &size);
    if (data == nullptr) {
      PyErr_Clear();
      keep = py::reinterpret_steal<py::object>(PyUnicode_AsEncodedString(s.ptr(), "utf-8", "surrogatepass"));
      if (!keep) throw py::error_already_set();
      data = PyBytes_AS_STRING(keep.ptr());
      size = PyBytes_GET_SIZE(keep.ptr());
    }
  }
};

py::str decode_utf8(const char* data, size_t n) {
  PyObject* s = PyUnicode_DecodeUTF8(data, static_cast<Py_ssize_t>(n), "surrogatepass");
  if (s == nullptr) {  // not reachable for text that came from a Python str
    PyErr_Clear();
    s = PyUnicode_DecodeUTF8(data, static_cast<Py_ssize_t>(n), "replace");
  }
  return py::reinterpret_steal<py::str>(s);
}

PyObject* float_tuple(const double* v, int n) {
  PyObject* t = PyTuple_New(n);
  for (int i = 0; i < n; ++i) PyTuple_SET_ITEM(t, i, PyFloat_FromDouble(v[i]));
  return t;
}

PyObject* points_tuple(const double (*p)[2], int n) {
  PyObject* t = PyTuple_New(n);
  for (int i = 0; i < n; ++i) PyTuple_SET_ITEM(t, i, float_tuple(p[i], 2));
  return t;
}

// The six per-object values, in AnswerObject field order (new references).
void object_values(const segzero::DecodedObject& o, PyObject* out[6]) {
  out[0] = float_tuple(o.box, 4);
  out[1] = points_tuple(o.points, o.n_points);
  out[2] = float_tuple(o.raw_box, 4);
  out[3] = points_tuple(o.raw_points, o.n_points);
  out[4] = float_tuple(o.model_box, 4);
  out[5] = points_tuple(o.model_points, o.n_points);
}

// Runs the decoder (thread-local, reused buffers); sizes are validated by the caller.
const segzero::DecodeResult& run_decode(const Utf8& utf8, double w, double h, double mw, double mh) {
  thread_local segzero::AnswerDecoder decoder;
  thread_local segzero::DecodeResult result;
  const segzero::DecodeSizes sizes{w, h, mw, mh};
  if (utf8.size > kReleaseGilBytes) {
    py::gil_scoped_release release;
    decoder.decode(utf8.data, static_cast<size_t>(utf8.size), sizes, result);
  } else {
    decoder.decode(utf8.data, static_cast<size_t>(utf8.size), sizes, result);
  }
  return result;
}

py::object think_of(const segzero::DecodeResult& r, const Utf8& utf8) {
  if (!r.has_think) return py::none();
  return decode_utf8(utf8.data + r.think_begin, r.think_end - r.think_begin);
}

void check_sizes(double w, double h, double mw, double mh) {
  for (double v : {w, h, mw, mh}) {
    if (!(v > 0) || !std::isfinite(v)) throw py::value_error("sizes must be positive and finite");
  }
}

// (ok, error, think, objects); objects: tuple of (box, points, raw_box, raw_points, model_box, model_points)
py::tuple decode(const py::str& text, double image_w, double image_h, double model_w, double model_h) {
  check_sizes(image_w, image_h, model_w, model_h);
  const Utf8 utf8(text);
  const segzero::DecodeResult& r = run_decode(utf8, image_w, image_h, model_w, model_h);
  PyObject* objects = PyTuple_New(static_cast<Py_ssize_t>(r.objects.size()));
  for (size_t i = 0; i < r.objects.size(); ++i) {
    PyObject* values[6];
    object_values(r.objects[i], values);
    PyObject* t = PyTuple_New(6);
    for (int k = 0; k < 6; ++k) PyTuple_SET_ITEM(t, k, values[k]);
    PyTuple_SET_ITEM(objects, static_cast<Py_ssize_t>(i), t);
  }
  py::object error = r.ok ? py::object(py::none()) : py::object(py::str(r.error));
  return py::make_tuple(py::bool_(r.ok), error, think_of(r, utf8), py::reinterpret_steal<py::object>(objects));
}

// ---- Answer / AnswerObject construction ----
// decode_answer builds the result dataclasses here: the frozen dataclass __init__ (one
// object.__setattr__ per field) costs more than decoding itself. With `fast` (decided by the Python
// side: plain dataclasses, exactly the expected fields, no __post_init__), instances are allocated
// and their __dict__ filled directly, which is what __init__ would do; otherwise the class is called.
struct ResultTypes {
  PyObject* answer = nullptr;  // strong references, intentionally never released (module lifetime)
  PyObject* object = nullptr;
  bool fast = false;
  PyObject* answer_keys[7] = {};
  PyObject* object_keys[6] = {};
};
ResultTypes g_types;
constexpr const char* kAnswerFields[7] = {"ok", "box", "points", "think", "error", "objects", "raw_text"};
constexpr const char* kObjectFields[6] = {"box", "points", "raw_box", "raw_points", "model_box", "model_points"};

void set_result_types(const py::object& answer_cls, const py::object& object_cls, bool fast) {
  if (!PyType_Check(answer_cls.ptr()) || !PyType_Check(object_cls.ptr())) throw py::type_error("expected classes");
  Py_XDECREF(g_types.answer);
  Py_XDECREF(g_types.object);
  g_types.answer = answer_cls.inc_ref().ptr();
  g_types.object = object_cls.inc_ref().ptr();
  g_types.fast = fast;
  for (int i = 0; i < 7; ++i)
    if (!g_types.answer_keys[i]) g_types.answer_keys[i] = PyUnicode_InternFromString(kAnswerFields[i]);
  for (int i = 0; i < 6; ++i)
    if (!g_types.object_keys[i]) g_types.object_keys[i] = PyUnicode_InternFromString(kObjectFields[i]);
}

// New instance of `cls` with the given field values (references stolen); nullptr with an exception set.
PyObject* make_instance(PyObject* cls, PyObject* const* keys, PyObject** values, int n) {
  PyObject* inst = nullptr;
  bool ok = true;
  for (int i = 0; i < n; ++i) ok = ok && values[i] != nullptr;
  if (ok && g_types.fast) {
    auto* tp = reinterpret_cast<PyTypeObject*>(cls);
    inst = tp->tp_alloc(tp, 0);
    PyObject* dict = inst ? PyObject_GenericGetDict(inst, nullptr) : nullptr;
    for (int i = 0; dict && i < n; ++i) {
      if (PyDict_SetItem(dict, keys[i], values[i]) < 0) ok = false;
    }
    if (!dict) ok = false;
    Py_XDECREF(dict);
  } else if (ok) {
    PyObject* kwargs = PyDict_New();
    for (int i = 0; kwargs && i < n; ++i) PyDict_SetItem(kwargs, keys[i], values[i]);
    PyObject* empty = PyTuple_New(0);
    inst = (kwargs && empty) ? PyObject_Call(cls, empty, kwargs) : nullptr;
    Py_XDECREF(empty);
    Py_XDECREF(kwargs);
  }
  for (int i = 0; i < n; ++i) Py_XDECREF(values[i]);
  if (!ok) Py_CLEAR(inst);
  if (!inst && !PyErr_Occurred()) PyErr_NoMemory();
  return inst;
}

// decode_answer(text, image_w, image_h, model_w, model_h) -> Answer, as a METH_FASTCALL function:
// this is the per-frame call, and pybind11's generic dispatch would cost as much as the decoding.
PyObject* decode_answer_fast(PyObject* /*self*/, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 5) {
    PyErr_SetString(PyExc_TypeError, "decode_answer(text, image_w, image_h, model_w, model_h) takes 5 arguments");
    return nullptr;
  }
  if (!g_types.answer) {
    PyErr_SetString(PyExc_RuntimeError, "set_result_types() was not called");
    return nullptr;
  }
  if (!PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "text must be a str");
    return nullptr;
  }
  double sizes[4];
  for (int i = 0; i < 4; ++i) {
    sizes[i] = PyFloat_AsDouble(args[i + 1]);
    if (sizes[i] == -1.0 && PyErr_Occurred()) return nullptr;
    if (!(sizes[i] > 0) || !std::isfinite(sizes[i])) {
      PyErr_SetString(PyExc_ValueError, "sizes must be positive and finite");
      return nullptr;
    }
  }
  try {
    const Utf8 utf8(py::reinterpret_borrow<py::str>(args[0]));
    const segzero::DecodeResult& r = run_decode(utf8, sizes[0], sizes[1], sizes[2], sizes[3]);
    const Py_ssize_t n = static_cast<Py_ssize_t>(r.objects.size());
    PyObject* objects = PyTuple_New(n);
    if (!objects) return nullptr;
    PyObject* first_box = nullptr;
    PyObject* first_points = nullptr;
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* values[6];
      object_values(r.objects[static_cast<size_t>(i)], values);
      if (i == 0 && values[0] && values[1]) {
        first_box = Py_NewRef(values[0]);
        first_points = Py_NewRef(values[1]);
      }
      PyObject* obj = make_instance(g_types.object, g_types.object_keys, values, 6);
      if (!obj) {
        Py_DECREF(objects);
        Py_XDECREF(first_box);
        Py_XDECREF(first_points);
        return nullptr;
      }
      PyTuple_SET_ITEM(objects, i, obj);
    }
    PyObject* values[7] = {
        Py_NewRef(r.ok ? Py_True : Py_False),
        first_box ? first_box : Py_NewRef(Py_None),
        first_points ? first_points : PyTuple_New(0),
        think_of(r, utf8).release().ptr(),
        r.ok ? Py_NewRef(Py_None) : PyUnicode_FromStringAndSize(r.error.data(), static_cast<Py_ssize_t>(r.error.size())),
        objects,
        Py_NewRef(args[0]),
    };
    return make_instance(g_types.answer, g_types.answer_keys, values, 7);
  } catch (py::error_already_set& e) {
    e.restore();
    return nullptr;
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}

PyMethodDef kDecodeAnswerDef = {"decode_answer", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(decode_answer_fast)),
                                METH_FASTCALL,
                                "decode_answer(text, image_w, image_h, model_w, model_h) -> Answer "
                                "(decode() wrapped into the registered result types)."};

// ---- constraint ----

using IndexPtr = std::shared_ptr<segzero::ConstraintIndex>;  // pybind11 holders cannot be const

IndexPtr build_index(const py::list& tokens, int model_w, int model_h, int64_t vocab_size,
                     const std::vector<int32_t>& eos_ids, const std::vector<int32_t>& banned_ids,
                     int max_pre_answer_ws, int grammar, int max_objects, int min_objects) {
  std::vector<std::string> bytes;
  bytes.reserve(tokens.size());
  for (const py::handle& t : tokens) {
    if (!PyBytes_Check(t.ptr())) throw py::type_error("tokens must be a list of bytes");
    bytes.emplace_back(PyBytes_AS_STRING(t.ptr()), static_cast<size_t>(PyBytes_GET_SIZE(t.ptr())));
  }
  segzero::ConstraintOptions options;
  options.model_w = model_w;
  options.model_h = model_h;
  options.vocab_size = vocab_size;
  options.eos_ids = eos_ids;
  options.banned_ids = banned_ids;
  options.max_pre_answer_ws = max_pre_answer_ws;
  if (grammar != 0 && grammar != 1) throw py::value_error("grammar must be 0 (seg_zero) or 1 (vision_reasoner)");
  options.grammar = static_cast<segzero::Grammar>(grammar);
  options.max_objects = max_objects;
  options.min_objects = min_objects;
  std::string error;
  std::unique_ptr<segzero::ConstraintIndex> index;
  {
    py::gil_scoped_release release;
    index = segzero::ConstraintIndex::build(bytes, options, error);
  }
  if (!index) throw py::value_error(error);
  return IndexPtr(std::move(index));
}

py::array checked_1d(const py::array& a, int64_t size, const char* what) {
  if (a.ndim() != 1 || a.shape(0) != size) {
    throw py::value_error(std::string(what) + " must be 1-D with vocab_size (" + std::to_string(size) + ") entries");
  }
  if (!(a.flags() & py::array::c_style) || !a.writeable()) {
    throw py::value_error(std::string(what) + " must be C-contiguous and writeable");
  }
  return a;
}

int phase_of(const segzero::ConstraintCursor& c) {
  const auto& idx = c.index();
  return idx.is_think(c.state()) ? 0 : (idx.is_done(c.state()) ? 2 : 1);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "segzero-edge native extension (answer decoding and the answer constraint)";
  m.attr("__version__") = SEGZERO_EDGE_VERSION;
  m.def("abi_version", []() { return 5; }, "Version of the native interface; bumped when bindings change.");

  m.def("decode", &decode, py::arg("text"), py::arg("image_w"), py::arg("image_h"), py::arg("model_w"),
        py::arg("model_h"),
        "Decode an answer: (ok, error, think, objects); see segzero_edge.answer.decode_answer.");

  m.def("set_result_types", &set_result_types, py::arg("answer_cls"), py::arg("object_cls"), py::arg("fast"),
        "Register segzero_edge.types.Answer / AnswerObject for decode_answer.");
  m.add_object("decode_answer",
               py::reinterpret_steal<py::object>(PyCFunction_NewEx(&kDecodeAnswerDef, nullptr, m.ptr())));

  py::class_<segzero::AnswerStream>(m, "AnswerStream")
      .def(py::init<>())
      .def(
          "feed",
          [](segzero::AnswerStream& s, const py::str& piece) {
            const Utf8 utf8(piece);
            return s.feed(utf8.data, static_cast<size_t>(utf8.size));
          },
          py::arg("piece"))
      .def("reset", &segzero::AnswerStream::reset)
      .def_property_readonly("done", &segzero::AnswerStream::done)
      .def_property_readonly("phase", [](const segzero::AnswerStream& s) { return static_cast<int>(s.phase()); })
      .def_property_readonly("reason", [](const segzero::AnswerStream& s) { return static_cast<int>(s.reason()); })
      .def_property_readonly("consumed_bytes", &segzero::AnswerStream::consumed);

  py::class_<segzero::ConstraintIndex, IndexPtr>(m, "ConstraintIndex")
      .def(py::init(&build_index), py::arg("tokens"), py::arg("model_w"), py::arg("model_h"),
           py::arg("vocab_size"), py::arg("eos_ids"), py::arg("banned_ids"), py::arg("max_pre_answer_ws"),
           py::arg("grammar") = 0, py::arg("max_objects") = 1, py::arg("min_objects") = 1)
      .def_property_readonly("vocab_size", &segzero::ConstraintIndex::vocab_size)
      .def_property_readonly("num_tokens", &segzero::ConstraintIndex::num_tokens)
      .def_property_readonly("num_states", &segzero::ConstraintIndex::num_states);

  py::class_<segzero::ConstraintCursor>(m, "ConstraintCursor")
      .def(py::init([](IndexPtr index, int64_t budget) { return segzero::ConstraintCursor(std::move(index), budget); }),
           py::arg("index"), py::arg("thinking_budget"))
      .def("advance", &segzero::ConstraintCursor::advance, py::arg("token"))
      .def("copy", [](const segzero::ConstraintCursor& c) { return segzero::ConstraintCursor(c); })
      .def(
          "fill_mask",
          [](const segzero::ConstraintCursor& c, py::array out) {
            const auto& idx = c.index();
            checked_1d(out, idx.vocab_size(), "mask");
            if (out.itemsize() != 1 || (out.dtype().kind() != 'b' && out.dtype().kind() != 'u')) {
              throw py::value_error("mask must have dtype bool or uint8");
            }
            auto* data = static_cast<uint8_t*>(out.mutable_data());
            py::gil_scoped_release release;
            idx.fill_mask(c.state(), data);
          },
          py::arg("out"))
      .def(
          "apply",
          [](const segzero::ConstraintCursor& c, py::array logits) {
            const auto& idx = c.index();
            checked_1d(logits, idx.vocab_size(), "logits");
            if (logits.dtype().is(py::dtype::of<float>())) {
              thread_local std::vector<float> scratch;
              auto* data = static_cast<float*>(logits.mutable_data());
              py::gil_scoped_release release;
              idx.apply<float>(c.state(), data, -std::numeric_limits<float>::infinity(), scratch);
            } else if (logits.dtype().is(py::dtype::of<double>())) {
              thread_local std::vector<double> scratch;
              auto* data = static_cast<double*>(logits.mutable_data());
              py::gil_scoped_release release;
              idx.apply<double>(c.state(), data, -std::numeric_limits<double>::infinity(), scratch);
            } else {
              throw py::value_error("logits must have dtype float32 or float64");
            }
          },
          py::arg("logits"))
      .def("allowed_ids",
           [](const segzero::ConstraintCursor& c) {
             std::vector<int32_t> ids;
             c.index().allowed_ids(c.state(), ids);
             py::array_t<int32_t> out(static_cast<py::ssize_t>(ids.size()));
             if (!ids.empty()) std::memcpy(out.mutable_data(), ids.data(), ids.size() * sizeof(int32_t));
             return out;
           })
      .def_property_readonly("allowed_count",
                             [](const segzero::ConstraintCursor& c) { return c.index().allowed_count(c.state()); })
      .def("forced_ids",
           [](const segzero::ConstraintCursor& c) {
             size_t n = 0;
             const int32_t* ids = c.index().forced_ids(c.state(), n);
             py::list out(n);
             for (size_t i = 0; i < n; ++i) out[i] = py::int_(ids[i]);
             return out;
           })
      .def("forced_text", [](const segzero::ConstraintCursor& c) { return py::bytes(c.index().forced_text(c.state())); })
      .def_property_readonly("phase", &phase_of)
      .def_property_readonly("state", &segzero::ConstraintCursor::state)
      .def_property_readonly("think_tokens", &segzero::ConstraintCursor::think_tokens)
      .def_property_readonly("thinking_budget", &segzero::ConstraintCursor::thinking_budget);
}
