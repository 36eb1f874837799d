#include "storage/postgres/lifecycle.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"
#include "server/domain/types.h"
#include "storage/postgres/audience.h"
#include "storage/postgres/ledger.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {

absl::Status CheckStartable(Connection& c, const Campaign& campaign) {
  // Locked until the start commits: another instance can neither delete
  // the sender nor take the template's approval back in between.
  absl::StatusOr<Rows> sender =
      c.Query("SELECT 1 FROM senders WHERE id = $1 FOR KEY SHARE",
              {campaign.sender_ref});
  if (!sender.ok()) return sender.status();
  if (sender->size() == 0) {
    return errors::Validation("sender_id",
                              absl::StrCat("sender ", campaign.sender_id,
                                           " is no longer registered"));
  }
  std::optional<Template> tmpl;
  if (!campaign.template_id.empty()) {
    absl::StatusOr<Rows> t =
        c.Query("SELECT * FROM templates WHERE id = $1 FOR SHARE",
                {campaign.template_id});
    if (!t.ok()) return t.status();
    if (t->size() == 0) {
      return errors::Validation(
          "template_id",
          absl::StrCat("template ", campaign.template_id, " no longer exists"));
    }
    tmpl = ReadTemplate(*t, 0);
    if (tmpl->status != TemplateStatus::kApproved) {
      return errors::Validation(
          "template_id",
          absl::StrCat("template ", campaign.template_id, " is ",
                       TemplateStatusName(tmpl->status), ", not approved"));
    }
  }
  return ValidateEmailFields(campaign, tmpl ? &*tmpl : nullptr);
}

absl::Status Transition(Connection& c, Campaign& campaign,
                        const LifecycleChange& change) {
  const CampaignStatus from = campaign.status;
  std::optional<absl::Time> schedule_at = campaign.schedule_at;
  if (change.event == CampaignEvent::kStart && change.send_at) {
    schedule_at = change.send_at;
  }
  ASSIGN_OR_RETURN(CampaignStatus to,
                   NextStatus(from, change.event, change.now, schedule_at,
                              campaign.max_lateness));
  switch (change.event) {
    case CampaignEvent::kStart:
      RETURN_IF_ERROR(CheckStartable(c, campaign));
      campaign.schedule_at = schedule_at;
      if (HasContactAudience(campaign)) {
        ASSIGN_OR_RETURN(
            const MaterializeResult added,
            MaterializeAudienceIn(c, campaign.account_id, campaign.id));
        // The row's counters moved with the rows; so do these.
        campaign.stats.total += added.inserted;
        campaign.stats.queued += added.inserted;
      }
      if (campaign.stats.total == 0) {
        return errors::Validation(
            "audience",
            absl::StrCat("campaign ", campaign.id,
                         " has no recipients; import recipients or give it a "
                         "contact audience before starting it"));
      }
      RETURN_IF_ERROR(ReserveForStart(c, campaign));
      break;
    case CampaignEvent::kScheduleAlarm:
      if (campaign.schedule_at && change.now < *campaign.schedule_at) {
        // An alarm of an earlier schedule: the campaign was rescheduled.
        return errors::Validation("schedule_at", "the start is not due yet");
      }
      if (to == CampaignStatus::kFailed) {
        campaign.failure_reason = absl::StrCat(
            "max_lateness exceeded: the start was due at ",
            absl::FormatTime(absl::RFC3339_sec, *campaign.schedule_at,
                             absl::UTCTimeZone()),
            " and could only happen ",
            absl::FormatDuration(change.now - *campaign.schedule_at), " later");
      }
      break;
    case CampaignEvent::kPause:
      if (from != CampaignStatus::kPaused || !change.reason.empty()) {
        campaign.pause_reason = change.reason;
      }
      break;
    case CampaignEvent::kResume:
      campaign.pause_reason.clear();
      break;
    case CampaignEvent::kCancel:
      campaign.cancelled_at = change.now;
      break;
    case CampaignEvent::kAllDispatched:
      if (campaign.stats.queued > 0) {
        return errors::Validation(
            "id", absl::StrCat("campaign ", campaign.id, " still has ",
                               campaign.stats.queued, " queued recipients"));
      }
      campaign.sent_at = change.now;
      if (campaign.stats.sent == 0) {  // nothing awaits a receipt
        to = CampaignStatus::kCompleted;
        campaign.completed_at = change.now;
      }
      break;
    case CampaignEvent::kAllFinal:
      campaign.completed_at = change.now;
      break;
    case CampaignEvent::kFatal:
      campaign.failure_reason = change.reason;
      break;
  }
  if (to == CampaignStatus::kSending && !campaign.started_at) {
    campaign.started_at = change.now;
  }
  if (to != from && (to == CampaignStatus::kSent || IsFinal(to))) {
    // Nothing more will be sent: what is still reserved goes back.
    RETURN_IF_ERROR(ReleaseAll(c, campaign,
                               absl::StrCat("ended ", CampaignStatusName(to))));
  }
  campaign.status = to;
  campaign.updated_at = change.now;
  return WriteCampaign(c, campaign, /*insert=*/false);
}

}  // namespace campaigns::storage::postgres
