// The entities of campaignd as plain C++ values: what storage reads and
// writes and what server/api converts to and from protobuf.
//
// Values only: no behaviour beyond trivial helpers; not synchronised (copy
// them between threads).
#ifndef CAMPAIGND_SERVER_DOMAIN_MODEL_H_
#define CAMPAIGND_SERVER_DOMAIN_MODEL_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/domain/types.h"

namespace campaigns {

// The current time at the precision the database keeps (microseconds), so a
// value returned from a write equals the one read back later.
inline absl::Time NowMicros() {
  return absl::FromUnixMicros(absl::ToUnixMicros(absl::Now()));
}

struct Account {
  std::string id;
  std::string name;
  bool admin = false;
  std::string currency = "EUR";
  int64_t credits_balance = 0;   // micro-credits
  int64_t credits_reserved = 0;  // micro-credits
  absl::Time created_at;
  absl::Time updated_at;
};

struct ApiKey {
  std::string id;
  std::string account_id;
  std::string name;
  std::string prefix;    // first characters of the secret
  std::string key_hash;  // Sha256Hex(secret)
  absl::Time created_at;
  std::optional<absl::Time> revoked_at;
};

// Who is calling: the result of authenticating an API key.
struct Principal {
  std::string account_id;
  std::string key_id;
  bool admin = false;
};

// A WhatsApp-style template component and its parameters, as Meta's Cloud
// API spells them (template.proto).
struct TemplateParameter {
  std::string type;
  std::string text;
  std::string payload;
};

struct TemplateComponent {
  std::string type;
  std::string format;
  std::string text;
  std::vector<TemplateParameter> parameters;
  std::string sub_type;  // a button's: "url", "quick_reply"
  int32_t index = 0;     // a button's position
};

struct Template {
  std::string id;
  std::string account_id;
  std::string name;
  std::string language;
  Channel channel = Channel::kUnspecified;
  std::string body;
  // Email templates only (empty otherwise): the subject line and the HTML
  // alternative of `body`, both with placeholders like the body.
  std::string subject;
  std::string html_body;
  std::vector<TemplateComponent> components;
  TemplateStatus status = TemplateStatus::kPending;
  std::string rejection_reason;
  absl::Time created_at;
  absl::Time updated_at;
};

struct Sender {
  std::string id;
  std::string account_id;
  std::string sender_id;  // the visible id
  Channel channel = Channel::kUnspecified;
  SenderTier tier = SenderTier::kTier1k;
  bool verified = false;
  std::string provider = "simulator";
  absl::Time created_at;
  absl::Time updated_at;
};

// An entry of an account's do-not-contact list. Channel::kUnspecified
// suppresses the address on every channel.
struct Suppression {
  std::string account_id;
  std::string address;  // normalised (see address.h)
  Channel channel = Channel::kUnspecified;
  SuppressionReason reason = SuppressionReason::kManual;
  std::string note;
  absl::Time created_at;
};

struct SuppressionFilter {
  Channel channel = Channel::kUnspecified;  // kUnspecified: every entry
  SuppressionReason reason = SuppressionReason::kUnspecified;
};

struct CampaignStats {
  int64_t total = 0;
  int64_t queued = 0;
  int64_t sent = 0;
  int64_t delivered = 0;
  int64_t read = 0;
  int64_t failed = 0;
  int64_t skipped = 0;
};

// What a campaign sends before per-recipient rendering (render.h): the
// text (its body or its template's), and for email the subject and the
// HTML body (its own, else its template's; "" when neither has one).
struct MessageContent {
  std::string text;
  std::string subject;
  std::string html;
};

// Defaults of a campaign's dispatch settings.
inline constexpr int32_t kDefaultBatchSize = 100;
inline constexpr int32_t kMaxBatchSize = 10000;

struct Campaign {
  std::string id;
  std::string account_id;
  std::string name;
  Channel channel = Channel::kUnspecified;
  std::string sender_id;   // visible sender id
  std::string sender_ref;  // the registered sender's snd_ id
  std::string body;
  // Email campaigns only (empty otherwise): the subject line and the HTML
  // alternative of the text, with placeholders like the body. Empty = the
  // template's (see EffectiveContent in rules.h).
  std::string subject;
  std::string html_body;
  std::string template_id;
  std::string template_name;  // resolved from template_id
  std::string template_lang;
  std::map<std::string, std::string> variable_mapping;
  // Components sent with a WhatsApp template, with placeholders rendered
  // per recipient (render.h).
  std::vector<TemplateComponent> template_components;
  // Contact id -> variables that override that contact's attributes when a
  // contact audience becomes recipients.
  std::map<std::string, std::map<std::string, std::string>> recipient_variables;
  // Audience: at most one of these; none = imported recipients.
  std::string contact_list_id;
  std::vector<std::string> tags;
  std::vector<std::string> contact_ids;

  CampaignStatus status = CampaignStatus::kDraft;
  std::string pause_reason;
  std::string failure_reason;
  CampaignStats stats;

  int32_t batch_size = kDefaultBatchSize;
  absl::Duration batch_delay = absl::ZeroDuration();
  int32_t rate_limit_per_second = 0;  // 0 = sender's tier
  std::optional<absl::Duration> validity_period;
  std::optional<absl::Duration> max_lateness;
  std::optional<absl::Time> schedule_at;

  std::optional<absl::Time> started_at;
  std::optional<absl::Time> sent_at;
  std::optional<absl::Time> completed_at;
  std::optional<absl::Time> cancelled_at;
  absl::Time created_at;
  absl::Time updated_at;

  // Set while an import runs (or is being rolled back): the campaign's
  // recipients from this storage sequence number on are its staged rows,
  // invisible until it commits. See Store::BeginRecipientImport.
  std::optional<int64_t> import_floor;
  // Storage's integer key for the campaign's recipients (0 until stored).
  int64_t seq = 0;
  // The stored row's version, where the engine keeps one (PostgreSQL: it
  // grows with every write of the row; SQLite, one process: always 0). A
  // campaign returned by a write carries the version its write read (the
  // row locked), so a snapshot with a lower version is older than one with
  // a higher version, and equal ones may be either (ProgressHub).
  int64_t version = 0;

  // Money (micro-credits), kept by storage's ledger: what the campaign still
  // holds reserved for its queued recipients, and what it has been debited.
  int64_t credits_reserved = 0;
  int64_t credits_debited = 0;
};

// One ledger row. Every change of an account's balance or reservation is
// one: at every row, balance_after + reserved_after = credits added -
// debited so far.
struct Transaction {
  enum class Type { kCredit, kReservation, kDebit, kRelease };
  int64_t seq = 0;
  std::string account_id;
  Type type = Type::kCredit;
  int64_t amount = 0;  // micro-credits, > 0
  std::string campaign_id;
  std::string description;
  int64_t balance_after = 0;
  int64_t reserved_after = 0;
  absl::Time created_at;
};

// One line of a cost estimate: recipients of a channel in one destination
// country ("" = unknown or not a phone number).
struct CostLineValue {
  Channel channel = Channel::kUnspecified;
  std::string country;
  int64_t recipients = 0;
  int64_t units = 0;       // billable units: SMS segments, else messages
  int64_t unit_price = 0;  // micro-credits per unit
  int64_t amount = 0;      // micro-credits
};

// What the queued recipients of a campaign would cost now.
struct CostEstimateValue {
  std::string campaign_id;
  int64_t total = 0;
  std::string currency;
  std::vector<CostLineValue> lines;
  // The account's balance, plus what the campaign already holds reserved.
  int64_t credits_available = 0;
  bool sufficient = true;
};

// Filters of GetCampaignStats: campaigns created in [from, to) on `channel`.
struct StatsFilter {
  std::optional<absl::Time> from;
  std::optional<absl::Time> to;
  Channel channel = Channel::kUnspecified;
};

struct ChannelStatsValue {
  Channel channel = Channel::kUnspecified;
  int64_t campaigns = 0;
  CampaignStats stats;
  int64_t cost = 0;  // micro-credits debited
};

struct AccountStats {
  int64_t campaigns = 0;
  CampaignStats stats;
  int64_t cost = 0;
  std::string currency;
  std::vector<ChannelStatsValue> by_channel;
};

// One message of a campaign to one address.
struct Recipient {
  std::string id;   // rcp_..., derived from seq (recipient_ids.h)
  int64_t seq = 0;  // storage order: leases and keyset paging follow it
  std::string campaign_id;
  std::string contact_id;  // ct_... when it came from a contact
  std::string address;     // normalised (see address.h)
  std::map<std::string, std::string> variables;
  RecipientStatus status = RecipientStatus::kQueued;
  std::string skip_reason;
  std::string provider_message_id;
  // The provider that sent (or last tried) it: the sender's, or the
  // fallback that took over; "" before any attempt.
  std::string provider;
  std::string error_code;
  std::string error_desc;
  int32_t attempts = 0;
  // RetryFailed re-queues so far: part of the message's idempotency key.
  int32_t retries = 0;
  // Queued, but handed to a provider that does not de-duplicate and no
  // outcome was recorded (a crash in between): it may have been sent.
  bool in_doubt = false;
  std::optional<absl::Time> sent_at;
  std::optional<absl::Time> delivered_at;
  std::optional<absl::Time> read_at;
  absl::Time created_at;
  absl::Time updated_at;
};

// One stored contact: an address on one channel with attributes and tags.
// Unique per (account, channel, address).
struct Contact {
  std::string id;  // ct_...
  std::string account_id;
  Channel channel = Channel::kUnspecified;
  std::string address;  // normalised (see address.h)
  std::map<std::string, std::string> attributes;
  std::vector<std::string> tags;  // sorted, unique
  absl::Time created_at;
  absl::Time updated_at;
};

struct ContactList {
  std::string id;  // cl_...
  std::string account_id;
  std::string name;
  std::string description;
  int64_t contact_count = 0;
  absl::Time created_at;
  absl::Time updated_at;
};

// Filters of ListCampaigns; unset members do not filter.
struct CampaignFilter {
  CampaignStatus status = CampaignStatus::kUnspecified;
  Channel channel = Channel::kUnspecified;
  std::string sender_id;  // visible id or snd_ id
};

// One page of a listing: `limit` items starting at `offset`.
struct PageRequest {
  int32_t page = 1;
  int32_t limit = 20;
  // Keyset paging (from a keyset page token): continue after the item with
  // this key; 0 = none. `page` then only numbers the page.
  int64_t after_key = 0;
  int64_t offset() const { return int64_t{page - 1} * limit; }
};

template <typename T>
struct Page {
  std::vector<T> items;
  int64_t total = 0;
  int32_t page = 1;
  int32_t limit = 20;
  bool has_more = false;
  // For keyset listings: the key of the last item when has_more, else 0.
  int64_t next_key = 0;
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_MODEL_H_
