#include "net/response_writer.hpp"

#include <cstring>

#include "http/response.hpp"
#include "net/server.hpp"

namespace luath::net {

namespace {

bool parse_length(std::string_view v, std::int64_t& out) {
    if (v.empty() || v.size() > 18) return false;
    std::int64_t n = 0;
    for (char ch : v) {
        if (ch < '0' || ch > '9') return false;
        n = n * 10 + (ch - '0');
    }
    out = n;
    return true;
}

bool has_close_token(std::string_view v) {
    std::size_t i = 0;
    while (i < v.size()) {
        while (i < v.size() && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) ++i;
        std::size_t j = i;
        while (j < v.size() && v[j] != ',' && v[j] != ' ' && v[j] != '\t') ++j;
        if (http::iequals(v.substr(i, j - i), "close")) return true;
        i = j;
    }
    return false;
}

void append_line(OutQueue& out, std::string_view name, std::string_view value) {
    char* p = out.reserve(name.size() + value.size() + 4);
    std::memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    std::memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '\r';
    *p = '\n';
    out.commit(name.size() + value.size() + 4);
}

}  // namespace

void ResponseWriter::start(Connection& c, bool http10, bool head, bool te_trailers) {
    *this = ResponseWriter{};
    c_ = &c;
    http10_ = http10;
    head_ = head;
    te_trailers_ = te_trailers;
}

bool ResponseWriter::begin(std::string_view status) {
    if (!http::is_valid_status(status)) {
        error_ = "invalid status";
        return false;
    }
    status_ = (status[0] - '0') * 100 + (status[1] - '0') * 10 + (status[2] - '0');
    const bool forbidden = status_ < 200 || status_ == 204 || status_ == 304;
    no_body_ = head_ || forbidden;
    mark_ = c_->out().mark();
    in_headers_ = true;
    OutQueue& out = c_->out();
    out.append("HTTP/1.1 ", 9);
    out.append(status);
    out.append("\r\n", 2);
    return true;
}

bool ResponseWriter::begin(int status) {
    if (status < 100 || status > 999) {
        error_ = "invalid status";
        return false;
    }
    std::string_view reason = http::reason_phrase(status);
    char line[96];
    if (reason.size() > sizeof line - 16) reason = {};
    // The whole status line in one append (no check needed: built from the table).
    std::memcpy(line, "HTTP/1.1 ", 9);
    std::size_t n = 9 + http::format_decimal(line + 9, static_cast<std::uint64_t>(status));
    line[n++] = ' ';
    std::memcpy(line + n, reason.data(), reason.size());
    n += reason.size();
    line[n++] = '\r';
    line[n++] = '\n';
    status_ = status;
    no_body_ = head_ || status_ < 200 || status_ == 204 || status_ == 304;
    mark_ = c_->out().mark();
    in_headers_ = true;
    c_->out().append(line, n);
    return true;
}

bool ResponseWriter::header(std::string_view name, std::string_view value) {
    if (!http::is_token(name)) {
        error_ = "invalid header name";
        return false;
    }
    if (!http::is_safe_field_value(value)) {
        error_ = "invalid header value";
        return false;
    }
    switch (name.size()) {
        case 4:
            if (http::iequals(name, "date")) has_date_ = true;
            break;
        case 10:
            if (http::iequals(name, "connection")) {
                app_close_ = app_close_ || has_close_token(value);
                return true;  // hop-by-hop: the server decides
            }
            if (http::iequals(name, "keep-alive")) return true;
            break;
        case 14:
            if (http::iequals(name, "content-length")) {
                std::int64_t n;
                if (!parse_length(value, n)) {
                    error_ = "invalid Content-Length";
                    return false;
                }
                if (status_ < 200 || status_ == 204) return true;  // no body, no length
                content_length_ = n;
            }
            break;
        case 17:
            if (http::iequals(name, "transfer-encoding")) return true;  // the server frames the body
            break;
        default: break;
    }
    append_line(c_->out(), name, value);
    return true;
}

bool ResponseWriter::end_headers(std::int64_t length_hint) {
    OutQueue& out = c_->out();
    const bool forbidden = status_ < 200 || status_ == 204 || status_ == 304;
    bool keep = !app_close_ && c_->can_keep_alive();
    if (!forbidden && content_length_ < 0) {
        if (length_hint >= 0) {
            char num[24];
            std::size_t len = http::format_decimal(num, static_cast<std::uint64_t>(length_hint));
            append_line(out, "Content-Length", std::string_view(num, len));
            content_length_ = length_hint;
        } else if (!http10_) {
            out.append("Transfer-Encoding: chunked\r\n", 28);
            chunked_ = true;
        } else {
            keep = false;  // HTTP/1.0 without a length: the close ends the body
        }
    }
    if (!keep) {
        c_->set_keep_alive(false);
        out.append("Connection: close\r\n", 19);
    } else if (http10_) {
        out.append("Connection: keep-alive\r\n", 24);
    }
    if (!has_date_) out.append(c_->date_line());
    out.append("\r\n", 2);
    in_headers_ = false;
    sent_headers_ = true;
    return true;
}

void ResponseWriter::cancel_headers() {
    if (in_headers_) c_->out().rollback(mark_);
    in_headers_ = false;
    app_close_ = has_date_ = false;
    content_length_ = -1;
}

void ResponseWriter::body(const char* p, std::size_t n, void* owner) {
    OutQueue& out = c_->out();
    auto drop = [&] {
        if (owner) out.append_ref(p, 0, owner);  // releases it
    };
    if (n == 0 || no_body_) {
        drop();
        return;
    }
    if (content_length_ >= 0) {
        std::uint64_t room = static_cast<std::uint64_t>(content_length_) - body_sent_;
        if (n > room) {
            n = static_cast<std::size_t>(room);
            if (!overflowed_) {
                overflowed_ = true;
                c_->set_keep_alive(false);
            }
            if (n == 0) {
                drop();
                return;
            }
        }
    }
    if (chunked_) {
        char size[24];
        out.append(size, http::format_chunk_size(size, n));
    }
    if (!owner || n < kCopyBelow) {
        out.append(p, n);
        drop();
    } else {
        out.append_ref(p, n, owner);
    }
    if (chunked_) out.append("\r\n", 2);
    body_sent_ += n;
}

void ResponseWriter::file(int fd, std::int64_t offset, std::uint64_t len, void* owner) {
    if (no_body_ || len == 0) {
        c_->out().append_ref(nullptr, 0, owner);
        return;
    }
    if (content_length_ >= 0 && len > static_cast<std::uint64_t>(content_length_) - body_sent_)
        len = static_cast<std::uint64_t>(content_length_) - body_sent_;
    if (chunked_) {
        char size[24];
        c_->out().append(size, http::format_chunk_size(size, len));
    }
    c_->out().append_file(fd, offset, len, owner);
    if (chunked_) c_->out().append("\r\n", 2);
    body_sent_ += len;
}

bool ResponseWriter::trailer(std::string_view name, std::string_view value) {
    if (!http::is_token(name) || !http::is_safe_field_value(value)) {
        error_ = "invalid trailer";
        return false;
    }
    if (!chunked_ || no_body_ || !te_trailers_) return true;  // the client cannot receive them: dropped
    if (!trailers_open_) {
        c_->out().append("0\r\n", 3);
        trailers_open_ = true;
    }
    append_line(c_->out(), name, value);
    return true;
}

void ResponseWriter::finish() {
    if (chunked_ && !no_body_) {
        if (trailers_open_) c_->out().append("\r\n", 2);
        else c_->out().append("0\r\n\r\n", 5);
    }
    if (content_length_ >= 0 && !no_body_ && body_sent_ < static_cast<std::uint64_t>(content_length_))
        c_->set_keep_alive(false);  // shorter than declared: the client sees the close
    c_->finish_response();
}

}  // namespace luath::net
