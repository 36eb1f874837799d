#include "server/api/recipient_import.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/api/handler_util.h"
#include "server/domain/address.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"

namespace campaigns::api {
namespace {

using Format = v1::ImportRecipientsRequest::Format;

constexpr absl::string_view kDuplicate =
    "duplicate: the address is already on the campaign or earlier in this "
    "import";

v1::ImportError MakeError(int64_t row, std::string reason) {
  v1::ImportError e;
  e.set_row(row);
  e.set_reason(std::move(reason));
  return e;
}

}  // namespace

RecipientImport::RecipientImport(const RpcContext& ctx, storage::Store* store,
                                 WorkerPool* pool)
    : ctx_(ctx), store_(store), pool_(pool) {}

void RecipientImport::OnMessage(const v1::ImportRecipientsRequest& message,
                                Next next) {
  std::vector<std::function<void()>> later;
  absl::Status result;
  bool withhold = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failure_.ok()) {
      result = failure_;
    } else if (phase_ == Phase::kFirst) {
      result = Start(message);
      if (result.ok() && phase_ == Phase::kStarting) {
        // Begin's callback takes the data of this message and calls `next`.
        auto self = shared_from_this();
        auto first = std::make_shared<v1::ImportRecipientsRequest>(message);
        store_->BeginRecipientImport(
            ctx_.principal.account_id, campaign_id_,
            [self, first, next](absl::StatusOr<storage::ImportLease> lease) {
              std::vector<std::function<void()>> after;
              absl::Status status;
              bool hold = false;
              {
                std::lock_guard<std::mutex> lock(self->mu_);
                if (!lease.ok()) {
                  self->phase_ = Phase::kDone;
                  status = lease.status();
                } else {
                  self->lease_ = *std::move(lease);
                  self->channel_ = self->lease_->campaign.channel;
                  self->csv_ = std::make_unique<CsvRowReader>(self->channel_);
                  self->phase_ = Phase::kRunning;
                  status = self->TakeData(*first);
                  if (!status.ok()) self->Fail(status);
                  hold = status.ok() && self->in_flight_ >= kMaxBatchesInFlight;
                  if (hold) self->pending_next_ = next;
                  after = self->Advance();
                }
              }
              for (auto& fn : after) fn();
              if (!hold) next(status);
            });
        return;
      }
    } else if (phase_ == Phase::kRunning || phase_ == Phase::kReplay) {
      result = TakeData(message);
      if (!result.ok()) {
        Fail(result);
        later = Advance();
      } else if (in_flight_ >= kMaxBatchesInFlight) {
        pending_next_ = next;
        withhold = true;
      }
    } else {
      result = absl::InternalError("import stream out of order");
    }
  }
  for (auto& fn : later) fn();
  if (!withhold) next(result);
}

absl::Status RecipientImport::Start(const v1::ImportRecipientsRequest& first) {
  RETURN_IF_ERROR(RequireId(first.campaign_id(), "campaign_id"));
  if (first.format() != v1::ImportRecipientsRequest::csv &&
      first.format() != v1::ImportRecipientsRequest::json_rows) {
    return errors::InvalidField("format", "must be csv or json_rows");
  }
  default_region_ =
      absl::AsciiStrToUpper(absl::StripAsciiWhitespace(first.default_region()));
  if (!default_region_.empty() && !IsKnownRegion(default_region_)) {
    return errors::InvalidField(
        "default_region",
        absl::StrCat("\"", first.default_region(),
                     "\" is not a known ISO 3166 region code (e.g. US, GB)"));
  }
  RETURN_IF_ERROR(CheckIdLength("request_id", first.request_id()));
  campaign_id_ = first.campaign_id();
  format_ = first.format();
  request_id_ = first.request_id();
  hasher_.UpdateField(campaign_id_);
  hasher_.UpdateField(absl::StrCat(static_cast<int>(format_)));
  hasher_.UpdateField(default_region_);
  if (!request_id_.empty()) {
    absl::StatusOr<std::optional<storage::ImportRecord>> previous =
        store_->FindImportRecord(ctx_.principal.account_id, "ImportRecipients",
                                 request_id_);
    if (!previous.ok()) return previous.status();
    if (previous->has_value()) {
      // A repeat: read the stream only to compare its hash.
      previous_ = **previous;
      phase_ = Phase::kReplay;
      return TakeData(first);
    }
  }
  phase_ = Phase::kStarting;
  return absl::OkStatus();
}

absl::Status RecipientImport::TakeData(
    const v1::ImportRecipientsRequest& message) {
  if (phase_ != Phase::kReplay && !message.campaign_id().empty() &&
      message.campaign_id() != campaign_id_) {
    return errors::InvalidField("campaign_id",
                                "only the first message names the campaign");
  }
  if (format_ == v1::ImportRecipientsRequest::csv) {
    if (message.rows_size() > 0) {
      return errors::InvalidField("rows", "the format is csv: send csv_chunk");
    }
    hasher_.Update(message.csv_chunk());
    if (phase_ == Phase::kReplay || message.csv_chunk().empty()) {
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(csv_->Feed(message.csv_chunk(), &open_batch_));
  } else {
    if (!message.csv_chunk().empty()) {
      return errors::InvalidField("csv_chunk",
                                  "the format is json_rows: send rows");
    }
    for (const v1::RecipientRow& in : message.rows()) {
      hasher_.UpdateField(in.address());
      hasher_.UpdateField(in.contact_id());
      // Map order is unspecified on the wire; hash it sorted.
      std::map<std::string, std::string> vars(in.variables().begin(),
                                              in.variables().end());
      hasher_.UpdateField(absl::StrCat(vars.size()));
      for (const auto& [k, v] : vars) {
        hasher_.UpdateField(k);
        hasher_.UpdateField(v);
      }
      if (phase_ == Phase::kReplay) continue;
      ImportRow row;
      row.row = ++json_rows_;
      row.address = std::string(absl::StripAsciiWhitespace(in.address()));
      row.contact_id = in.contact_id();
      row.variables = std::move(vars);
      if (row.address.empty() && row.contact_id.empty()) {
        row.error = "the address is empty";
      } else if (row.contact_id.size() > kMaxIdLength) {
        row.error = "contact_id is too long";
      }
      open_batch_.push_back(std::move(row));
      if (open_batch_.size() >= kBatchRows) SubmitBatch();
    }
  }
  while (open_batch_.size() >= kBatchRows) SubmitBatch();
  return absl::OkStatus();
}

void RecipientImport::SubmitBatch() {
  if (open_batch_.empty()) return;
  std::vector<ImportRow> rows;
  if (open_batch_.size() <= kBatchRows) {
    rows.swap(open_batch_);
  } else {
    rows.assign(std::make_move_iterator(open_batch_.begin()),
                std::make_move_iterator(open_batch_.begin() + kBatchRows));
    open_batch_.erase(open_batch_.begin(), open_batch_.begin() + kBatchRows);
  }
  const int64_t seq = next_submit_++;
  ++in_flight_;
  received_ += static_cast<int64_t>(rows.size());
  pool_->Submit([self = shared_from_this(), seq, rows = std::move(rows)]() {
    self->OnChecked(seq, self->Check(std::move(rows)));
  });
}

RecipientImport::CheckedBatch RecipientImport::Check(
    std::vector<ImportRow> rows) const {
  // Runs on a pool thread. channel_, default_region_ and the principal are
  // fixed before the first batch is submitted.
  CheckedBatch out;

  // Rows naming a contact take its address when they have none.
  std::vector<std::string> contact_ids;
  for (const ImportRow& r : rows) {
    if (r.error.empty() && !r.contact_id.empty()) {
      contact_ids.push_back(r.contact_id);
    }
  }
  std::map<std::string, std::string> contacts;
  if (!contact_ids.empty()) {
    absl::StatusOr<std::map<std::string, std::string>> found =
        store_->ContactAddresses(ctx_.principal.account_id, channel_,
                                 contact_ids);
    if (!found.ok()) {
      out.status = found.status();
      return out;
    }
    contacts = *std::move(found);
  }

  std::vector<std::string> addresses;
  std::vector<size_t> kept;
  for (size_t i = 0; i < rows.size(); ++i) {
    ImportRow& r = rows[i];
    if (r.error.empty() && !r.contact_id.empty()) {
      auto it = contacts.find(r.contact_id);
      if (it == contacts.end()) {
        r.error = absl::StrCat("contact ", r.contact_id, " not found on ",
                               ChannelName(channel_));
      } else if (r.address.empty()) {
        r.address = it->second;
      }
    }
    if (!r.error.empty()) {
      ++out.invalid;
      out.refused.push_back(MakeError(r.row, r.error));
      continue;
    }
    absl::StatusOr<std::string> address =
        NormalizeAddress(channel_, r.address, default_region_);
    if (!address.ok()) {
      ++out.invalid;
      out.refused.push_back(
          MakeError(r.row, RowErrorReason(r.line, address.status().message())));
      continue;
    }
    addresses.push_back(*std::move(address));
    kept.push_back(i);
  }

  absl::StatusOr<std::vector<bool>> suppressed =
      store_->SuppressedAmong(ctx_.principal.account_id, channel_, addresses);
  if (!suppressed.ok()) {
    out.status = suppressed.status();
    return out;
  }
  out.rows.reserve(kept.size());
  for (size_t j = 0; j < kept.size(); ++j) {
    ImportRow& r = rows[kept[j]];
    if ((*suppressed)[j]) {
      ++out.suppressed;
      out.refused.push_back(MakeError(
          r.row,
          RowErrorReason(r.line, absl::StrCat(addresses[j],
                                              " is on the suppression list"))));
      continue;
    }
    storage::StagedRecipient staged;
    staged.address = std::move(addresses[j]);
    staged.contact_id = std::move(r.contact_id);
    staged.variables_json = storage::VariablesToJson(r.variables);
    out.rows.push_back(std::move(staged));
    out.row_numbers.push_back(r.row);
    out.line_numbers.push_back(r.line);
  }
  return out;
}

void RecipientImport::OnChecked(int64_t seq, CheckedBatch batch) {
  std::vector<std::function<void()>> later;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_ || !failure_.ok()) {
      --in_flight_;
    } else if (!batch.status.ok()) {
      --in_flight_;
      Fail(batch.status);
    } else {
      checked_.emplace(seq, std::move(batch));
      StageReady();
    }
    later = Advance();
  }
  for (auto& fn : later) fn();
}

void RecipientImport::StageReady() {
  for (auto it = checked_.find(next_stage_); it != checked_.end();
       it = checked_.find(next_stage_)) {
    CheckedBatch batch = std::move(it->second);
    checked_.erase(it);
    ++next_stage_;
    invalid_ += batch.invalid;
    suppressed_ += batch.suppressed;
    if (!stage_buffer_) {
      stage_buffer_ = std::make_shared<CheckedBatch>();
      stage_buffer_->batches = 0;
    }
    CheckedBatch& buffer = *stage_buffer_;
    buffer.batches += batch.batches;
    for (auto& r : batch.rows) buffer.rows.push_back(std::move(r));
    buffer.row_numbers.insert(buffer.row_numbers.end(),
                              batch.row_numbers.begin(),
                              batch.row_numbers.end());
    buffer.line_numbers.insert(buffer.line_numbers.end(),
                               batch.line_numbers.begin(),
                               batch.line_numbers.end());
    for (auto& e : batch.refused) buffer.refused.push_back(std::move(e));
  }
  // Stage in large writes (each a bulk op of the writer): a random-order
  // index costs about one page write per touched page per commit, so fewer,
  // larger commits write far less. The last rows go when the stream ended.
  if (!stage_buffer_ ||
      (stage_buffer_->rows.size() < kStageRows &&
       !(phase_ == Phase::kEnding && next_stage_ == next_submit_))) {
    return;
  }
  std::shared_ptr<CheckedBatch> batch = std::move(stage_buffer_);
  stage_buffer_.reset();
  if (batch->rows.empty()) {
    AddErrors(std::move(batch->refused));
    in_flight_ -= batch->batches;
    return;
  }
  std::vector<storage::StagedRecipient> rows = std::move(batch->rows);
  batch->rows.clear();
  batch->staged = static_cast<int64_t>(rows.size());
  // Under mu_, so batches reach the writer in row order: the first of two
  // equal addresses is the one kept.
  store_->StageRecipients(*lease_, std::move(rows),
                          [self = shared_from_this(), batch](
                              absl::StatusOr<std::vector<int32_t>> duplicates) {
                            self->OnStaged(*batch, std::move(duplicates));
                          });
}

void RecipientImport::OnStaged(
    const CheckedBatch& batch,
    absl::StatusOr<std::vector<int32_t>> duplicates) {
  std::vector<std::function<void()>> later;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_ -= batch.batches;
    if (!duplicates.ok()) {
      Fail(duplicates.status());
    } else {
      const int64_t dups = static_cast<int64_t>(duplicates->size());
      imported_ += batch.staged - dups;
      duplicates_ += dups;
      std::vector<v1::ImportError> errors = batch.refused;
      for (int32_t i : *duplicates) {
        errors.push_back(
            MakeError(batch.row_numbers[i],
                      RowErrorReason(batch.line_numbers[i], kDuplicate)));
      }
      AddErrors(std::move(errors));
    }
    later = Advance();
  }
  for (auto& fn : later) fn();
}

void RecipientImport::AddErrors(std::vector<v1::ImportError> errors) {
  if (errors.empty()) return;
  if (errors_.size() >= kMaxErrors &&
      errors.front().row() > errors_.back().row() &&
      std::is_sorted(errors.begin(), errors.end(),
                     [](const v1::ImportError& a, const v1::ImportError& b) {
                       return a.row() < b.row();
                     })) {
    return;  // all later than the ones kept
  }
  for (v1::ImportError& e : errors) errors_.push_back(std::move(e));
  std::sort(errors_.begin(), errors_.end(),
            [](const v1::ImportError& a, const v1::ImportError& b) {
              return a.row() < b.row();
            });
  if (errors_.size() > kMaxErrors) errors_.resize(kMaxErrors);
}

void RecipientImport::OnEnd(Reply<v1::ImportRecipientsResponse> reply) {
  std::vector<std::function<void()>> later;
  absl::StatusOr<v1::ImportRecipientsResponse> immediate =
      absl::InternalError("unset");
  bool answer_now = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failure_.ok()) {
      reply_ = std::move(reply);
    } else if (phase_ == Phase::kFirst) {
      phase_ = Phase::kDone;
      answer_now = true;
      immediate = errors::InvalidField(
          "campaign_id",
          "the stream was empty: its first message must name the campaign");
    } else if (phase_ == Phase::kReplay) {
      phase_ = Phase::kDone;
      answer_now = true;
      v1::ImportRecipientsResponse first;
      if (hasher_.HexDigest() == previous_->body_hash &&
          previous_->campaign_id == campaign_id_ &&
          first.ParseFromString(previous_->response)) {
        immediate = std::move(first);
      } else {
        immediate = errors::IdempotencyConflict(request_id_);
      }
    } else if (phase_ == Phase::kRunning) {
      reply_ = std::move(reply);
      absl::Status finished = absl::OkStatus();
      if (format_ == v1::ImportRecipientsRequest::csv) {
        finished = csv_->Finish(&open_batch_);
      }
      if (!finished.ok()) {
        Fail(finished);
      } else {
        while (!open_batch_.empty()) SubmitBatch();
        phase_ = Phase::kEnding;
        StageReady();  // rows already checked but still buffered
      }
    } else {
      answer_now = true;
      immediate = absl::InternalError("import stream ended out of order");
    }
    if (!answer_now) later = Advance();
  }
  for (auto& fn : later) fn();
  if (answer_now) reply(std::move(immediate));
}

void RecipientImport::OnAbort() {
  std::vector<std::function<void()>> later;
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
    pending_next_ = nullptr;  // the call is over: nothing to resume
    reply_ = nullptr;
    later = Advance();
  }
  for (auto& fn : later) fn();
}

void RecipientImport::Fail(absl::Status error) {
  if (failure_.ok()) failure_ = std::move(error);
}

std::vector<std::function<void()>> RecipientImport::Advance() {
  std::vector<std::function<void()>> later;
  if (aborted_ || !failure_.ok()) {
    if (stage_buffer_) {  // checked rows that will never be staged
      in_flight_ -= stage_buffer_->batches;
      stage_buffer_.reset();
    }
    if (in_flight_ == 0 && !committing_) RollBackOnce();
    if (!failure_.ok()) {
      if (pending_next_) {
        later.push_back(
            [next = std::move(pending_next_), s = failure_] { next(s); });
        pending_next_ = nullptr;
      }
      if (reply_ && phase_ != Phase::kDone) {
        phase_ = Phase::kDone;
        later.push_back(
            [reply = std::move(reply_), s = failure_] { reply(s); });
        reply_ = nullptr;
      }
    }
    return later;
  }
  if (phase_ == Phase::kRunning && pending_next_ &&
      in_flight_ < kMaxBatchesInFlight) {
    later.push_back(
        [next = std::move(pending_next_)] { next(absl::OkStatus()); });
    pending_next_ = nullptr;
  }
  if (phase_ == Phase::kEnding && in_flight_ == 0 && !committing_) Commit();
  return later;
}

void RecipientImport::Commit() {
  committing_ = true;
  v1::ImportRecipientsResponse response = Response();
  storage::ImportRecord record;
  record.body_hash = hasher_.HexDigest();
  record.campaign_id = campaign_id_;
  record.response = response.SerializeAsString();
  store_->CommitRecipientImport(
      *lease_, imported_, request_id_, record,
      [self = shared_from_this(),
       response = std::move(response)](absl::StatusOr<Campaign> campaign) {
        std::vector<std::function<void()>> later;
        Reply<v1::ImportRecipientsResponse> reply;
        {
          std::lock_guard<std::mutex> lock(self->mu_);
          self->committing_ = false;
          if (campaign.ok()) {
            self->committed_ = true;
            self->phase_ = Phase::kDone;
            reply = std::move(self->reply_);
            self->reply_ = nullptr;
          } else {
            self->Fail(campaign.status());
            later = self->Advance();
          }
        }
        for (auto& fn : later) fn();
        if (reply) reply(response);
      });
}

void RecipientImport::RollBackOnce() {
  if (!lease_ || rolled_back_ || committed_) return;
  rolled_back_ = true;
  store_->AbortRecipientImport(*lease_, nullptr);
}

v1::ImportRecipientsResponse RecipientImport::Response() const {
  v1::ImportRecipientsResponse out;
  out.set_received(received_);
  out.set_imported(imported_);
  out.set_duplicates(duplicates_);
  out.set_invalid(invalid_);
  out.set_suppressed(suppressed_);
  for (const v1::ImportError& e : errors_) *out.add_errors() = e;
  return out;
}

}  // namespace campaigns::api
