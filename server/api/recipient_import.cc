// RecipientImport: the ImportRecipients stream, recipients into a campaign.
#include "server/api/recipient_import.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/api/handler_util.h"
#include "server/domain/address.h"
#include "server/domain/errors.h"
#include "server/log/log.h"

namespace campaigns::api {

RecipientImport::~RecipientImport() {
  if (lease_.has_value() && !settled_) {
    logging::Error("import neither committed nor rolled back: rolling back",
                   {{"campaign_id", campaign_id_}});
    store_->AbortRecipientImport(*lease_, nullptr);
  }
}

absl::Status RecipientImport::Configure(const Req& first) {
  RETURN_IF_ERROR(RequireId(first.campaign_id(), "campaign_id"));
  campaign_id_ = first.campaign_id();
  hasher_.UpdateField(campaign_id_);
  return absl::OkStatus();
}

absl::Status RecipientImport::CheckLater(const Req& message) const {
  if (!message.campaign_id().empty() && message.campaign_id() != campaign_id_) {
    return errors::InvalidField("campaign_id",
                                "only the first message names the campaign");
  }
  return absl::OkStatus();
}

void RecipientImport::Begin(std::function<void(absl::StatusOr<Channel>)> done) {
  store_->BeginRecipientImport(
      ctx_.principal.account_id, campaign_id_,
      [this, done = std::move(done)](absl::StatusOr<ImportLease> lease) {
        if (!lease.ok()) return done(lease.status());
        lease_ = *std::move(lease);
        done(lease_->campaign.channel);
      });
}

CheckedBatch RecipientImport::Check(std::vector<ImportRow> rows) const {
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
      out.refused.push_back(MakeImportError(r.row, r.error));
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
      out.refused.push_back(MakeImportError(
          r.row,
          RowErrorReason(r.line, absl::StrCat(addresses[j],
                                              " is on the suppression list"))));
      continue;
    }
    StagedRecipient staged;
    staged.row = r.row;
    staged.line = r.line;
    staged.address = std::move(addresses[j]);
    staged.contact_id = std::move(r.contact_id);
    staged.variables_json = VariablesToJson(r.variables);
    if (IsPhoneChannel(channel_)) {
      staged.country = RegionOfPhoneNumber(staged.address);
    }
    out.rows.push_back(std::move(staged));
    out.row_numbers.push_back(r.row);
    out.line_numbers.push_back(r.line);
  }
  return out;
}

void RecipientImport::Stage(std::vector<StagedRecipient> rows,
                            Done<std::vector<int32_t>> done) {
  store_->StageRecipients(*lease_, std::move(rows), std::move(done));
}

void RecipientImport::Commit(Resp response, ImportRecord record,
                             Reply<Resp> done) {
  // Duplicates are found once every row is staged, in address order: a
  // sort on a read connection that may take seconds for millions of rows,
  // so on the pool rather than here (mu_ held, maybe a CQ thread).
  lease_->settled = true;  // a rollback from now on looks for addresses
  pool()->Submit([self = shared_from_this(), this,
                  response = std::move(response), record = std::move(record),
                  done = std::move(done)]() mutable {
    absl::StatusOr<ImportDuplicates> duplicates = store_->SettleRecipientImport(
        *lease_, kMaxErrors, [this] { return Aborted(); });
    if (!duplicates.ok()) return done(duplicates.status());
    if (duplicates->count > 0) {
      response.set_imported(response.imported() - duplicates->count);
      response.set_duplicates(response.duplicates() + duplicates->count);
      for (const ImportDuplicates::Row& d : duplicates->first) {
        *response.add_errors() =
            MakeImportError(d.row, RowErrorReason(d.line, DuplicateReason()));
      }
      SortAndTrimErrors(response.mutable_errors());
    }
    CommitSettled(std::move(response), std::move(record), std::move(done));
  });
}

void RecipientImport::CommitSettled(Resp response, ImportRecord record,
                                    Reply<Resp> done) {
  record.response = response.SerializeAsString();
  const int64_t imported = response.imported();
  auto commit = [this, imported, record = std::move(record),
                 response = std::move(response),
                 done = std::move(done)](absl::Status) mutable {
    store_->CommitRecipientImport(
        *lease_, imported, request_id_, record,
        [this, response = std::move(response),
         done = std::move(done)](absl::StatusOr<Campaign> campaign) {
          if (!campaign.ok()) return done(campaign.status());
          settled_ = true;
          done(response);
        });
  };
  if (lease_->campaign.status == CampaignStatus::kDraft) {
    commit(absl::OkStatus());
    return;
  }
  // A started campaign reserves the new rows' cost at commit: count what
  // that needs first, in chunks, so the commit stays one short write.
  store_->PrepareCosts(ctx_.principal.account_id, campaign_id_,
                       /*only_if_priced=*/true, std::move(commit));
}

void RecipientImport::RollBack() {
  settled_ = true;
  store_->AbortRecipientImport(*lease_, nullptr);
}

absl::string_view RecipientImport::DuplicateReason() const {
  return "duplicate: the address is already on the campaign or earlier in "
         "this import";
}

void RecipientImport::FillResponse(Resp* out) const {
  out->set_suppressed(suppressed_);
}

}  // namespace campaigns::api
