// campaignctl's file imports: a CSV or JSON file streamed to
// ImportRecipients or ImportContacts with a live progress line.
#include "client/import_file.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "campaigns/v1/contact.grpc.pb.h"

namespace campaigns::client {
namespace {

constexpr size_t kChunkBytes = 64 * 1024;
constexpr int kJsonRowsPerMessage = 1000;

// Counts CSV records as bytes go by (line breaks outside quotes that end a
// non-blank line), for the progress line; the server does the real parse.
class CsvRowCounter {
 public:
  void Feed(const std::string& bytes) {
    for (char c : bytes) {
      if (c == '"') {
        quoted_ = !quoted_;
        content_ = true;
      } else if ((c == '\n' || c == '\r') && !quoted_) {
        if (content_) ++records_;
        content_ = false;
      } else {
        content_ = true;
      }
    }
  }
  // Data rows so far (the header excluded), counting an unterminated last
  // line once `final` is set.
  int64_t rows(bool final = false) const {
    const int64_t records = records_ + (final && content_ ? 1 : 0);
    return records > 0 ? records - 1 : 0;
  }

 private:
  bool quoted_ = false;
  bool content_ = false;
  int64_t records_ = 0;
};

// Prints "rows, percent, rows/s" on one refreshed stderr line.
class Progress {
 public:
  Progress(bool enabled, int64_t total_bytes)
      : enabled_(enabled),
        total_bytes_(total_bytes),
        start_(std::chrono::steady_clock::now()) {}

  void Update(int64_t rows, int64_t bytes, bool force = false) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double secs =
        std::chrono::duration<double>(now - start_).count() + 1e-9;
    std::string line = absl::StrFormat("\r  %d rows sent", rows);
    if (total_bytes_ > 0) {
      absl::StrAppendFormat(&line, "  %3.0f%%",
                            100.0 * static_cast<double>(bytes) /
                                static_cast<double>(total_bytes_));
    }
    absl::StrAppendFormat(&line, "  %.0f rows/s   ",
                          static_cast<double>(rows) / secs);
    std::cerr << line << std::flush;
  }

  void Done() {
    if (enabled_) std::cerr << "\n";
  }

  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start_)
        .count();
  }

 private:
  const bool enabled_;
  const int64_t total_bytes_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
};

bool IsAddressKey(const std::string& key) {
  const std::string k = absl::AsciiStrToLower(key);
  return k == "address" || k == "phone" || k == "phone_number" ||
         k == "email" || k == "chat_id";
}

std::string ScalarText(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

// One JSON object as a row: an address key (address, phone,
// phone_number, email, chat_id), optional contact_id, optional `variables`
// object, and any other keys as variables (seed 004's shape).
absl::Status ToRow(const nlohmann::json& obj, int64_t index,
                   v1::RecipientRow* row) {
  if (!obj.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("row ", index, " is not a JSON object"));
  }
  for (const auto& [key, value] : obj.items()) {
    if (key == "contact_id") {
      row->set_contact_id(ScalarText(value));
    } else if (key == "variables" && value.is_object()) {
      for (const auto& [k, v] : value.items()) {
        (*row->mutable_variables())[k] = ScalarText(v);
      }
    } else if (row->address().empty() && IsAddressKey(key)) {
      row->set_address(ScalarText(value));
    } else {
      (*row->mutable_variables())[key] = ScalarText(value);
    }
  }
  return absl::OkStatus();
}

}  // namespace

template <typename Req, typename Resp>
int RunImport(Env& env, const ImportOptions& opts, Req first,
              const OpenImportStream<Req, Resp>& open_stream) {
  std::ifstream file_in;
  std::istream* in = &std::cin;
  int64_t total_bytes = 0;
  if (opts.file != "-") {
    file_in.open(opts.file, std::ios::binary);
    if (!file_in) return env.ReportUsage("cannot open " + opts.file);
    file_in.seekg(0, std::ios::end);
    total_bytes = static_cast<int64_t>(file_in.tellg());
    file_in.seekg(0, std::ios::beg);
    in = &file_in;
  }
  std::string format = absl::AsciiStrToLower(opts.format);
  if (format.empty()) {
    const std::string name = absl::AsciiStrToLower(opts.file);
    format = absl::EndsWith(name, ".json") || absl::EndsWith(name, ".jsonl") ||
                     absl::EndsWith(name, ".ndjson")
                 ? "json"
                 : "csv";
  }
  if (format != "csv" && format != "json") {
    return env.ReportUsage("--format must be csv or json");
  }
  const Client* client = env.client();
  if (client == nullptr) return kExitUsage;

  grpc::ClientContext ctx;
  client->PrepareContext(&ctx);
  // An import takes as long as the file needs; Ctrl-C cancels it, and the
  // server then keeps nothing of it.
  ctx.set_deadline(std::chrono::system_clock::time_point::max());
  Resp response;
  std::unique_ptr<grpc::ClientWriter<Req>> writer =
      open_stream(client->channel(), &ctx, &response);

  first.set_format(format == "csv" ? v1::ImportRecipientsRequest::csv
                                   : v1::ImportRecipientsRequest::json_rows);
  first.set_default_region(opts.region);
  first.set_request_id(opts.request_id);
  bool open = writer->Write(first);

  Progress progress(
      !opts.no_progress && !env.options().json && isatty(STDERR_FILENO) == 1,
      total_bytes);
  int64_t rows = 0;
  int64_t bytes = 0;
  if (format == "csv") {
    CsvRowCounter counter;
    std::string buf(kChunkBytes, '\0');
    while (open && in->good()) {
      in->read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const std::streamsize n = in->gcount();
      if (n <= 0) break;
      Req chunk;
      chunk.set_csv_chunk(buf.data(), static_cast<size_t>(n));
      counter.Feed(chunk.csv_chunk());
      open = writer->Write(chunk);
      bytes += n;
      rows = counter.rows();
      progress.Update(rows, bytes);
    }
    rows = counter.rows(/*final=*/true);
  } else {
    // One JSON document (an array of rows, or {"<list_key>": [...]}), or
    // one row object per line.
    std::string text((std::istreambuf_iterator<char>(*in)),
                     std::istreambuf_iterator<char>());
    std::vector<nlohmann::json> objects;
    nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
    if (!doc.is_discarded()) {
      if (doc.is_object() && doc.contains(opts.list_key)) {
        doc = doc[opts.list_key];
      }
      if (doc.is_array()) {
        for (auto& item : doc) objects.push_back(std::move(item));
      } else {
        objects.push_back(std::move(doc));
      }
    } else {
      std::istringstream lines(text);
      std::string line;
      int64_t number = 0;
      while (std::getline(lines, line)) {
        ++number;
        if (absl::StripAsciiWhitespace(line).empty()) continue;
        nlohmann::json obj = nlohmann::json::parse(line, nullptr, false);
        if (obj.is_discarded()) {
          ctx.TryCancel();
          return env.ReportUsage(absl::StrCat(
              opts.file, " line ", number, ": not JSON (want an array, {\"",
              opts.list_key, "\": [...]} or one object per line)"));
        }
        objects.push_back(std::move(obj));
      }
    }
    Req batch;
    for (size_t i = 0; i < objects.size() && open; ++i) {
      absl::Status converted =
          ToRow(objects[i], static_cast<int64_t>(i) + 1, batch.add_rows());
      if (!converted.ok()) {
        ctx.TryCancel();
        return env.ReportUsage(
            absl::StrCat(opts.file, ": ", converted.message()));
      }
      if (batch.rows_size() == kJsonRowsPerMessage || i + 1 == objects.size()) {
        rows += batch.rows_size();
        open = writer->Write(batch);
        batch.Clear();
        progress.Update(rows, static_cast<int64_t>(i + 1) * total_bytes /
                                  static_cast<int64_t>(objects.size()));
      }
    }
    bytes = total_bytes;
  }
  if (open) writer->WritesDone();
  const grpc::Status status = writer->Finish();
  progress.Update(rows, bytes, /*force=*/true);
  progress.Done();
  if (!status.ok()) {
    return env.ReportFailure(
        DecodeRpcStatus(status, ctx.GetServerTrailingMetadata()));
  }
  if (env.options().json) {
    PrintJson(response, env.out());
  } else if (env.options().ids_only) {
    // An import makes no object: nothing to print (the exit code says it).
  } else {
    PrintFields(response, env.out());
    const double secs = progress.Seconds();
    env.out() << absl::StrFormat(
        "%d rows in %.1f s (%.0f rows/s)\n", response.received(), secs,
        static_cast<double>(response.received()) / (secs > 0 ? secs : 1));
  }
  return kExitOk;
}

void AddImportFileOptions(CLI::App* import, ImportOptions* opts,
                          const std::string& what) {
  import
      ->add_option(
          "file", opts->file,
          absl::StrCat("CSV with a header row (an address column: phone, "
                       "phone_number, email, chat_id or address; other columns "
                       "are ",
                       what, "), or JSON: an array of row objects, {\"",
                       opts->list_key,
                       "\": [...]}, or one object per line; - reads stdin"))
      ->required();
  import->add_option("--format", opts->format,
                     "csv or json (default: json for .json/.jsonl/.ndjson "
                     "files, else csv)");
  import->add_option("--region", opts->region,
                     "Region for numbers without a country code, e.g. US");
  import->add_option("--request-id", opts->request_id,
                     "Idempotency key: a repeat returns the first result");
  import->add_flag("--no-progress", opts->no_progress,
                   "No live progress line on stderr");
}

template int RunImport(Env&, const ImportOptions&, v1::ImportRecipientsRequest,
                       const OpenImportStream<v1::ImportRecipientsRequest,
                                              v1::ImportRecipientsResponse>&);
template int RunImport(Env&, const ImportOptions&, v1::ImportContactsRequest,
                       const OpenImportStream<v1::ImportContactsRequest,
                                              v1::ImportContactsResponse>&);

}  // namespace campaigns::client
