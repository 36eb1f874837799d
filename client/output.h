// Rendering of responses for campaignctl: JSON, `field: value` blocks and
// aligned tables, all by protobuf reflection so new message types need no
// new printing code.
//
//   PrintJson(campaign, std::cout);
//   PrintFields(campaign, std::cout);
//   // id:      cmp_...
//   // status:  draft
//   // stats:
//   //   total:  0
//   PrintTable(list_response, {{"ID", "id"}, {"TOTAL", "stats.total"}},
//              std::cout);
//
// Values: timestamps as RFC 3339 UTC, durations as "1h30m", enums by their
// proto value names ("sms", "draft"), unset values as "-".

#ifndef CAMPAIGND_CLIENT_OUTPUT_H_
#define CAMPAIGND_CLIENT_OUTPUT_H_

#include <google/protobuf/message.h>

#include <ostream>
#include <string>
#include <vector>

namespace campaigns::client {

// Prints `message` as one JSON object and a newline (proto3 JSON names,
// fields with default values included).
void PrintJson(const google::protobuf::Message& message, std::ostream& out);

// Prints every field that is set as aligned `name: value` lines; nested
// messages, maps and repeated messages as indented blocks. Empty strings,
// empty lists, unset messages and fields named `secret` are left out.
void PrintFields(const google::protobuf::Message& message, std::ostream& out);

// Prints only ids, one a line, for scripts (`campaignctl -q`): a list's
// item ids, else the response's `id` (or that of the object it wraps), else
// the request's `id` (a delete's). Nothing when there is none.
void PrintIds(const google::protobuf::Message& request,
              const google::protobuf::Message& response, std::ostream& out);

// A table column: its header and a dotted field path into each item, e.g.
// "stats.total". A plain value.
struct Column {
  std::string header;
  std::string path;
};

// Prints the `items` of a list response (ListCampaignsResponse and friends)
// as a table with a header row, then the footer
//   page 1, 20 of 135, more: yes
// plus `next page token: ...` when the response has one.
void PrintTable(const google::protobuf::Message& list_response,
                const std::vector<Column>& columns, std::ostream& out);

// The value at dotted `path` in `message`, formatted as described above;
// "-" when unset or empty.
std::string FormatPath(const google::protobuf::Message& message,
                       const std::string& path);

}  // namespace campaigns::client

#endif  // CAMPAIGND_CLIENT_OUTPUT_H_
