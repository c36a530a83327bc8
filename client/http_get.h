#pragma once

// Plain HTTP GET for `gem-client report` (cpp-httplib underneath).

#include <string>

namespace gemserve::client {

// "http://host:port/path?query" as its origin ("http://host:port") and the rest
// ("/path?query", "/" when absent). Only http:// and https:// are accepted. Returns
// false when `url` is not such a URL.
bool SplitUrl(const std::string& url, std::string* origin, std::string* path);

// Fetches `url` (timeouts: 2 s to connect, 5 s to read). Returns true with the body
// on HTTP 200; otherwise false with `error` saying why (unreachable, HTTP status).
bool HttpGet(const std::string& url, std::string* body, std::string* error);

}  // namespace gemserve::client
