// Owning handle for a PyObject*: exactly one reference, released on destruction.
// A raw PyObject* elsewhere in the code is borrowed unless its name or comment says otherwise.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <utility>

namespace luath::py {

class Ref {
public:
    Ref() = default;
    // Takes over a new reference (may be null, e.g. after a failed call).
    static Ref steal(PyObject* o) { return Ref(o); }
    // Adds a reference to a borrowed object.
    static Ref borrow(PyObject* o) {
        Py_XINCREF(o);
        return Ref(o);
    }
    Ref(const Ref&) = delete;
    Ref& operator=(const Ref&) = delete;
    Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Ref& operator=(Ref&& o) noexcept {
        if (this != &o) {
            PyObject* old = std::exchange(p_, std::exchange(o.p_, nullptr));
            Py_XDECREF(old);
        }
        return *this;
    }
    ~Ref() { Py_XDECREF(p_); }

    PyObject* get() const { return p_; }
    explicit operator bool() const { return p_ != nullptr; }
    // Gives the reference away (to a function that steals it).
    PyObject* release() { return std::exchange(p_, nullptr); }
    void reset() {
        PyObject* old = std::exchange(p_, nullptr);
        Py_XDECREF(old);
    }

private:
    explicit Ref(PyObject* o) : p_(o) {}
    PyObject* p_ = nullptr;
};

}  // namespace luath::py
