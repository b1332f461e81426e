// ParseError and Result<T>: what a checked parse returns (a view or why it was refused).
// Used by Ipv4View::parse, TcpView::parse and parse_frame (frame.hpp). No exceptions,
// no allocation; <expected> is avoided because the fuzz build uses clang++-14.
#pragma once

#include <cstdint>

namespace fastnet {

// Why a received frame was not handed to TCP. NotIpv4 is a category (ARP, IPv6, any
// other ethertype), not an error: the engine passes such frames on or ignores them.
enum class ParseError : uint8_t {
    Truncated,       // a header or the IP total length runs past the buffer
    NotIpv4,
    Fragment,        // MF set or fragment offset != 0: fastnet does not reassemble
    BadIpChecksum,
    BadIpHeader,     // version != 4, IHL < 5, total length < header length
    NotTcp,
    BadTcpHeader,    // data offset < 5 or past the segment
    BadTcpChecksum,
    BadTcpOptions,   // option length 0/1, overrunning the header, wrong fixed length
};

const char* parse_error_name(ParseError e);

template <class T>
class Result {
public:
    Result(const T& v) : value_(v), ok_(true) {}                 // NOLINT: implicit by design
    Result(ParseError e) : error_(e), ok_(false) {}              // NOLINT

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    ParseError error() const { return error_; }
    const T& value() const { return value_; }
    const T& operator*() const { return value_; }
    const T* operator->() const { return &value_; }

private:
    T value_{};
    ParseError error_ = ParseError::Truncated;
    bool ok_;
};

} // namespace fastnet
