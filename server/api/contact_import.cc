// ContactImport: the ImportContacts stream, contacts into an account.
#include "server/api/contact_import.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/api/contact_fields.h"
#include "server/api/convert.h"
#include "server/api/handler_util.h"
#include "server/domain/address.h"
#include "server/domain/errors.h"
#include "server/log/log.h"

namespace campaigns::api {

std::string FinishContactImportResponse(const std::string& recorded,
                                        const ContactImportResult& result) {
  v1::ImportContactsResponse response;
  response.ParseFromString(recorded);
  response.set_imported(result.created);
  response.set_updated(result.updated);
  return response.SerializeAsString();
}

ContactImport::~ContactImport() {
  if (lease_.id != 0 && !settled_) {
    logging::Error("import neither committed nor rolled back: rolling back",
                   {{"import_id", lease_.id}});
    store_->AbortContactImport(lease_, nullptr);
  }
}

absl::Status ContactImport::Configure(const Req& first) {
  ASSIGN_OR_RETURN(Channel channel,
                   ChannelFromProto(first.channel(), "channel"));
  if (channel == Channel::kUnspecified) {
    return errors::InvalidField(
        "channel", "is required: the channel of the contacts' addresses");
  }
  if (!first.list_id().empty()) {
    RETURN_IF_ERROR(RequireId(first.list_id(), "list_id"));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> tags,
                   TagsFromProto(first.tags(), "tags"));
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  lease_.account_id = ctx_.principal.account_id;
  lease_.channel = channel;
  lease_.list_id = first.list_id();
  lease_.tags = std::move(tags);
  hasher_.UpdateField(ChannelName(channel));
  hasher_.UpdateField(lease_.list_id);
  hasher_.UpdateField(absl::StrCat(lease_.tags.size()));
  for (const std::string& t : lease_.tags) hasher_.UpdateField(t);
  return absl::OkStatus();
}

absl::Status ContactImport::CheckLater(const Req& message) const {
  if (message.channel() != 0 || !message.list_id().empty() ||
      message.tags_size() > 0) {
    return errors::InvalidField(
        message.channel() != 0       ? "channel"
        : !message.list_id().empty() ? "list_id"
                                     : "tags",
        "only the first message carries the import's settings");
  }
  return absl::OkStatus();
}

void ContactImport::Begin(std::function<void(absl::StatusOr<Channel>)> done) {
  store_->BeginContactImport(
      lease_,
      [this, done = std::move(done)](absl::StatusOr<ContactImportLease> lease) {
        if (!lease.ok()) return done(lease.status());
        lease_.id = lease->id;
        done(lease_.channel);
      });
}

CheckedBatch ContactImport::Check(std::vector<ImportRow> rows) const {
  // Runs on a pool thread; channel_ and default_region_ are fixed.
  CheckedBatch out;
  out.rows.reserve(rows.size());
  for (ImportRow& r : rows) {
    if (r.error.empty() && !r.contact_id.empty()) {
      r.error = "contact_id has no meaning in a contact import";
    }
    std::map<std::string, std::string> attributes;
    if (r.error.empty()) {
      if (r.variables.size() > kMaxListEntries) {
        r.error = absl::StrCat("more than ", kMaxListEntries, " attributes");
      }
      for (auto& [key, value] : r.variables) {
        if (!r.error.empty()) break;
        if (value.empty()) continue;  // never blanks a stored attribute
        r.error = AttributeProblem(key, value);
        if (r.error.empty()) attributes.emplace(key, std::move(value));
      }
    }
    if (!r.error.empty()) {
      ++out.invalid;
      out.refused.push_back(
          MakeImportError(r.row, RowErrorReason(r.line, r.error)));
      continue;
    }
    absl::StatusOr<std::string> address =
        NormalizeAddress(channel_, r.address, default_region_);
    if (!address.ok()) {
      ++out.invalid;
      out.refused.push_back(MakeImportError(
          r.row, RowErrorReason(r.line, address.status().message())));
      continue;
    }
    StagedRecipient staged;
    staged.address = *std::move(address);
    staged.variables_json = VariablesToJson(attributes);
    out.rows.push_back(std::move(staged));
    out.row_numbers.push_back(r.row);
    out.line_numbers.push_back(r.line);
  }
  return out;
}

void ContactImport::Stage(std::vector<StagedRecipient> rows,
                          Done<std::vector<int32_t>> done) {
  const int64_t first = next_row_;
  next_row_ += static_cast<int64_t>(rows.size());
  store_->StageContacts(lease_, first, std::move(rows), std::move(done));
}

void ContactImport::Commit(Resp response, ImportRecord record,
                           Reply<Resp> done) {
  // `imported` and `updated` are known once applied.
  response.clear_imported();
  record.response = response.SerializeAsString();
  store_->CommitContactImport(
      lease_, request_id_, record, FinishContactImportResponse,
      [this, response = std::move(response), done = std::move(done)](
          absl::StatusOr<ContactImportResult> result) mutable {
        if (!result.ok()) return done(result.status());
        settled_ = true;
        response.set_imported(result->created);
        response.set_updated(result->updated);
        done(std::move(response));
      });
}

void ContactImport::RollBack() {
  settled_ = true;
  store_->AbortContactImport(lease_, nullptr);
}

absl::string_view ContactImport::DuplicateReason() const {
  return "duplicate: the address came earlier in this import";
}

}  // namespace campaigns::api
