// Validation and lifecycle rules that need no storage: request shape checks,
// template placeholders, paging, and API.md's lifecycle table.
//
//   RETURN_IF_ERROR(ValidateCampaignSpec(campaign));
//   ASSIGN_OR_RETURN(PageRequest page, MakePageRequest(req_page, req_limit,
//                                                      req_token, query));
//   ASSIGN_OR_RETURN(CampaignStatus next,
//                    NextStatus(c.status, CampaignEvent::kPause, now, c));
//
// All functions are pure and thread-safe.
#ifndef CAMPAIGND_SERVER_DOMAIN_RULES_H_
#define CAMPAIGND_SERVER_DOMAIN_RULES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/domain/model.h"

namespace campaigns {

inline constexpr int32_t kDefaultPageLimit = 20;
inline constexpr int32_t kMaxPageLimit = 100;
inline constexpr size_t kMaxNameLength = 200;
inline constexpr size_t kMaxBodyLength = 65536;
// An email subject is one header line: RFC 5322's limit of 998 bytes.
inline constexpr size_t kMaxSubjectLength = 998;
// HTML with inline CSS runs larger than text: four times the body's cap.
inline constexpr size_t kMaxHtmlBodyLength = 4 * kMaxBodyLength;
inline constexpr size_t kMaxIdLength = 128;       // any id or request_id
inline constexpr size_t kMaxAddressLength = 320;  // sender ids, addresses
inline constexpr size_t kMaxListEntries = 1000;   // tags, contact_ids, mappings
inline constexpr size_t kMaxShortText = 200;      // a tag, a mapping entry
inline constexpr size_t kMaxAttributeValueLength = 1000;  // a variable's value
inline constexpr size_t kMaxComponents = 50;              // template components
inline constexpr size_t kMaxRecipientVariables = 10000;   // contacts of them

// INVALID_ARGUMENT naming `field` when `id` is longer than kMaxIdLength.
absl::Status CheckIdLength(absl::string_view field, absl::string_view id);

// page 0 = 1, limit 0 = 20; page < 0, limit < 0 or limit > 100 is
// INVALID_ARGUMENT naming the field. A non-empty `page_token` (issued by
// EncodePageToken for the same `query`) overrides `page` and gives the
// limit (a different non-zero `limit` is refused). `query` identifies the
// listing (its caller, method and filters; see QueryDigest in
// server/api/handler_util.h): a token of another query, an altered one or
// one of an older format is INVALID_ARGUMENT naming `page_token`.
absl::StatusOr<PageRequest> MakePageRequest(int32_t page, int32_t limit,
                                            const std::string& page_token,
                                            absl::string_view query);
// Opaque URL-safe token for the page after `page` (same limit) of `query`;
// with `last_key` > 0 a keyset token continuing after the item with that
// key (MakePageRequest turns it into `after_key`).
std::string EncodePageToken(const PageRequest& page, absl::string_view query,
                            int64_t last_key = 0);

// Fills has_more/page/limit of a listing from its total.
template <typename T>
Page<T> MakePage(std::vector<T> items, int64_t total, const PageRequest& req) {
  Page<T> page;
  page.has_more = req.offset() + static_cast<int64_t>(items.size()) < total;
  page.items = std::move(items);
  page.total = total;
  page.page = req.page;
  page.limit = req.limit;
  return page;
}

// The placeholders ("1", "name") of a text with {{1}} / {{ name }}
// placeholders, in order of first appearance, without duplicates.
std::vector<std::string> ExtractPlaceholders(const std::string& text);
// All placeholders of a template's body, subject, html_body and components.
std::vector<std::string> TemplatePlaceholders(const Template& t);

// Shape checks of a template as created or updated: INVALID_ARGUMENT naming
// the field, or FAILED_PRECONDITION / VALIDATION_ERROR naming `subject` or
// `html_body` when a template that is not for email has one.
absl::Status ValidateTemplate(const Template& t);

// Shape checks of a sender registration.
absl::Status ValidateSender(const Sender& s);

// Shape checks of a campaign's user-set fields (as created or updated):
// INVALID_ARGUMENT naming the field, or FAILED_PRECONDITION /
// VALIDATION_ERROR when body and template are both absent. Checks needing
// storage (sender registered, template approved, the channel when it is
// unspecified: inferred from the sender or template) are the caller's.
absl::Status ValidateCampaignSpec(const Campaign& c);

// What campaign `c` sends: its body, subject and html_body, or where it has
// none its template's (`t`: the template `c.template_id` names, null when it
// has none). The subject and HTML body of a campaign override its
// template's one by one.
MessageContent EffectiveContent(const Campaign& c, const Template* t);

// The email rules of campaign `c` once its channel is known (inferred from
// its sender or template when unspecified), with its template `t` (null when
// it has none): FAILED_PRECONDITION / VALIDATION_ERROR naming `subject` or
// `html_body` when a campaign that is not for email has one (it would never
// be sent), and naming `subject` when an email campaign has no subject of
// its own nor from its template.
absl::Status ValidateEmailFields(const Campaign& c, const Template* t);

// Campaigns may be edited in these states only.
bool IsEditable(CampaignStatus s);
// Final states: nothing happens to the campaign any more.
bool IsFinal(CampaignStatus s);

// What a cancellation's chain of skip chunks does after one chunk, on every
// engine. Each chunk settles queued recipients in a write of its own: those
// never handed to a provider become skipped (campaign_cancelled); those
// marked handed with no outcome recorded, by this instance before a restart
// or by an instance that is dead, fail outcome_unknown (they may have gone
// out); those marked by another live instance are left queued, for the
// outcome of its call still out. `written` is the chunk's write, `queued`
// the campaign's queued counter after it, `settled` how many it settled and
// `left_elsewhere` how many queued recipients another live instance marked
// (counted only when none were settled).
enum class SkipChainStep {
  kDone,        // nothing queued is left
  kNext,        // settle the next chunk
  kRetryLater,  // the write failed: the rest once writes succeed again
  kGone,        // the campaign was deleted meanwhile (NOT_FOUND)
  // What is left awaits another live instance's outcomes: the chain ends
  // with queued recipients, and a later one settles what those leave.
  kLeftElsewhere,
  // Queued recipients counted, yet none settled nor left elsewhere: the
  // counter counts rows that are not there. The chain ends (it would never
  // reach 0); log it.
  kOvercounted,
};
SkipChainStep NextSkipChainStep(const absl::Status& written, int64_t queued,
                                int64_t settled, int64_t left_elsewhere);
// The error_desc of a recipient a skip chunk fails outcome_unknown.
inline constexpr char kCancelledInDoubt[] =
    "handed to its provider with no outcome recorded (before a restart, or "
    "by an instance that stopped) when the campaign was cancelled; it may "
    "have gone out, and is not sent again";

// Events of API.md's lifecycle table.
enum class CampaignEvent {
  kStart,          // StartCampaign / ConfirmCampaign
  kScheduleAlarm,  // schedule_at reached
  kPause,
  kResume,
  kCancel,
  kAllDispatched,
  kAllFinal,  // every recipient final, or receipt timeout
  kFatal,
};

// The state `from` moves to on `event`, or FAILED_PRECONDITION /
// ILLEGAL_TRANSITION. `schedule_at` decides scheduled-vs-sending for kStart
// and kResume; `max_lateness` decides sending-vs-failed for kScheduleAlarm.
// Pausing a paused campaign is allowed and leaves it paused.
absl::StatusOr<CampaignStatus> NextStatus(
    CampaignStatus from, CampaignEvent event, absl::Time now,
    const std::optional<absl::Time>& schedule_at,
    const std::optional<absl::Duration>& max_lateness);

// Whether an inbound text is an opt-out keyword (STOP, UNSUBSCRIBE, END,
// QUIT, CANCEL, OPTOUT, ... alone, any case, spaces and a final . or !
// around): the sender's number is then suppressed for the recipient.
bool IsOptOutText(absl::string_view text);

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_RULES_H_
