// campaignctl's file imports, shared by `recipients import` and
// `contacts import`: reads a CSV file in chunks (or a JSON file as rows),
// streams it after the settings message, shows rows and rows/s on stderr,
// and prints the server's summary.

#ifndef CAMPAIGND_CLIENT_IMPORT_FILE_H_
#define CAMPAIGND_CLIENT_IMPORT_FILE_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "client/command.h"

namespace campaigns::client {

struct ImportOptions {
  std::string file;        // a path, or "-" for stdin
  std::string format;      // "", csv, json
  std::string region;      // default_region
  std::string request_id;  // idempotency key
  bool no_progress = false;
  // The key of a JSON document's row array: {"<list_key>": [...]}.
  std::string list_key;
};

// Opens the client stream of an import on `channel`.
template <typename Req, typename Resp>
using OpenImportStream = std::function<std::unique_ptr<grpc::ClientWriter<Req>>(
    const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext* ctx,
    Resp* response)>;

// The file, --format, --region, --request-id and --no-progress options;
// `what` names what the CSV's other columns become.
void AddImportFileOptions(CLI::App* import, ImportOptions* opts,
                          const std::string& what);

// Streams `opts.file` after `first` (whose format, default_region and
// request_id are filled from `opts`). Defined for ImportRecipients and
// ImportContacts.
template <typename Req, typename Resp>
int RunImport(Env& env, const ImportOptions& opts, Req first,
              const OpenImportStream<Req, Resp>& open_stream);

}  // namespace campaigns::client

#endif  // CAMPAIGND_CLIENT_IMPORT_FILE_H_
