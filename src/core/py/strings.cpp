#include "py/strings.hpp"

namespace luath::py {

Strings S;

namespace {
bool intern(PyObject*& slot, const char* text) {
    slot = PyUnicode_InternFromString(text);
    return slot != nullptr;
}
}  // namespace

bool init_strings() {
#define LUATH_INIT(name) if (!intern(S.name, #name)) return false;
    LUATH_STRINGS(LUATH_INIT)
#undef LUATH_INIT
    return intern(S.wsgi_version, "wsgi.version") && intern(S.wsgi_url_scheme, "wsgi.url_scheme") &&
           intern(S.wsgi_input, "wsgi.input") && intern(S.wsgi_errors, "wsgi.errors") &&
           intern(S.wsgi_multithread, "wsgi.multithread") &&
           intern(S.wsgi_multiprocess, "wsgi.multiprocess") && intern(S.wsgi_run_once, "wsgi.run_once") &&
           intern(S.wsgi_input_terminated, "wsgi.input_terminated") &&
           intern(S.wsgi_file_wrapper, "wsgi.file_wrapper") && intern(S.http10, "HTTP/1.0") &&
           intern(S.http11, "HTTP/1.1") && intern(S.empty, "");
}

}  // namespace luath::py
