#include "client/http_get.h"

#include <httplib.h>

namespace gemserve::client {

bool SplitUrl(const std::string& url, std::string* origin, std::string* path) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return false;
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return false;
  const size_t path_start = url.find('/', scheme_end + 3);
  *origin = url.substr(0, path_start);
  *path = path_start == std::string::npos ? "/" : url.substr(path_start);
  return origin->size() > scheme_end + 3;
}

bool HttpGet(const std::string& url, std::string* body, std::string* error) {
  std::string origin, path;
  if (!SplitUrl(url, &origin, &path)) {
    *error = "not an http:// URL: " + url;
    return false;
  }
  httplib::Client client(origin);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  const httplib::Result result = client.Get(path);
  if (!result) {
    *error = "cannot reach " + url + " (" + httplib::to_string(result.error()) + " error)";
    return false;
  }
  if (result->status != 200) {
    *error = url + " answered HTTP " + std::to_string(result->status);
    return false;
  }
  *body = result->body;
  return true;
}

}  // namespace gemserve::client
