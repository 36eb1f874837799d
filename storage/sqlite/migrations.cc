// Forward-only schema migrations keyed on PRAGMA user_version.
#include "storage/sqlite/migrations.h"

#include <SQLiteCpp/Transaction.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace campaigns::storage {
namespace {

// Times are INTEGER microseconds since the Unix epoch (UTC); enums are their
// lowercase API names; maps and lists are JSON text.
const std::vector<const char*>& Migrations() {
  static const auto* const kMigrations = new std::vector<const char*>{
      // 1: accounts, keys, templates, senders, campaigns, idempotency.
      R"sql(
CREATE TABLE accounts (
  id               TEXT PRIMARY KEY,
  name             TEXT NOT NULL,
  admin            INTEGER NOT NULL DEFAULT 0,
  currency         TEXT NOT NULL,
  credits_balance  INTEGER NOT NULL DEFAULT 0,
  credits_reserved INTEGER NOT NULL DEFAULT 0,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);
CREATE TABLE api_keys (
  id          TEXT PRIMARY KEY,
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  name        TEXT NOT NULL,
  prefix      TEXT NOT NULL,
  key_hash    TEXT NOT NULL UNIQUE,
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);
CREATE INDEX api_keys_by_account ON api_keys(account_id, created_at, id);
CREATE TABLE templates (
  id               TEXT PRIMARY KEY,
  account_id       TEXT NOT NULL REFERENCES accounts(id),
  name             TEXT NOT NULL,
  language         TEXT NOT NULL,
  channel          TEXT NOT NULL,
  body             TEXT NOT NULL,
  components       TEXT NOT NULL DEFAULT '[]',
  status           TEXT NOT NULL,
  rejection_reason TEXT NOT NULL DEFAULT '',
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  UNIQUE (account_id, name, language)
);
CREATE INDEX templates_by_account ON templates(account_id, created_at, id);
CREATE TABLE senders (
  id          TEXT PRIMARY KEY,
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  sender_id   TEXT NOT NULL,
  channel     TEXT NOT NULL,
  tier        TEXT NOT NULL,
  verified    INTEGER NOT NULL DEFAULT 0,
  provider    TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  UNIQUE (account_id, channel, sender_id)
);
CREATE INDEX senders_by_account ON senders(account_id, created_at, id);
CREATE TABLE contact_lists (
  id          TEXT PRIMARY KEY,
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  name        TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);
CREATE TABLE campaigns (
  id                    TEXT PRIMARY KEY,
  account_id            TEXT NOT NULL REFERENCES accounts(id),
  name                  TEXT NOT NULL,
  channel               TEXT NOT NULL,
  sender_id             TEXT NOT NULL,
  sender_ref            TEXT NOT NULL,
  body                  TEXT NOT NULL DEFAULT '',
  template_id           TEXT NOT NULL DEFAULT '',
  template_name         TEXT NOT NULL DEFAULT '',
  template_lang         TEXT NOT NULL DEFAULT '',
  variable_mapping      TEXT NOT NULL DEFAULT '{}',
  contact_list_id       TEXT NOT NULL DEFAULT '',
  tags                  TEXT NOT NULL DEFAULT '[]',
  contact_ids           TEXT NOT NULL DEFAULT '[]',
  status                TEXT NOT NULL,
  pause_reason          TEXT NOT NULL DEFAULT '',
  failure_reason        TEXT NOT NULL DEFAULT '',
  total                 INTEGER NOT NULL DEFAULT 0,
  queued                INTEGER NOT NULL DEFAULT 0,
  sent                  INTEGER NOT NULL DEFAULT 0,
  delivered             INTEGER NOT NULL DEFAULT 0,
  read                  INTEGER NOT NULL DEFAULT 0,
  failed                INTEGER NOT NULL DEFAULT 0,
  skipped               INTEGER NOT NULL DEFAULT 0,
  batch_size            INTEGER NOT NULL,
  batch_delay_us        INTEGER NOT NULL DEFAULT 0,
  rate_limit_per_second INTEGER NOT NULL DEFAULT 0,
  validity_period_us    INTEGER,
  max_lateness_us       INTEGER,
  schedule_at           INTEGER,
  started_at            INTEGER,
  sent_at               INTEGER,
  completed_at          INTEGER,
  cancelled_at          INTEGER,
  created_at            INTEGER NOT NULL,
  updated_at            INTEGER NOT NULL
);
CREATE INDEX campaigns_by_account ON campaigns(account_id, created_at, id);
CREATE INDEX campaigns_by_status ON campaigns(status);
CREATE TABLE idempotency_keys (
  account_id   TEXT NOT NULL,
  method       TEXT NOT NULL,
  request_id   TEXT NOT NULL,
  body_hash    TEXT NOT NULL,
  resource_id  TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (account_id, method, request_id)
) WITHOUT ROWID;
)sql",
      // 2: the do-not-contact list. channel '' = every channel.
      R"sql(
CREATE TABLE suppressions (
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  channel     TEXT NOT NULL,
  address     TEXT NOT NULL,
  reason      TEXT NOT NULL,
  note        TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL,
  PRIMARY KEY (account_id, address, channel)
) WITHOUT ROWID;
CREATE INDEX suppressions_by_time ON suppressions(account_id, created_at);
)sql",
      // 3: audience. Recipients and contacts are numbered by `seq`
      // (AUTOINCREMENT: never reused, so a number names one row forever and
      // rows added later always sort after). A recipient's public id is its
      // seq run through a keyed permutation (server/domain/recipient_ids.h)
      // whose random key is meta 'recipient_id_key'.
      // campaigns.import_floor: while an import is running, the campaign's
      // recipients with seq >= import_floor are that import's staged rows,
      // invisible to every reader until the import commits.
      R"sql(
CREATE TABLE meta (
  key    TEXT PRIMARY KEY,
  value  TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO meta(key, value) VALUES('recipient_id_key', hex(randomblob(16)));
ALTER TABLE campaigns ADD COLUMN import_floor INTEGER;
ALTER TABLE idempotency_keys ADD COLUMN response BLOB;
CREATE TABLE recipients (
  seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
  campaign_id          TEXT NOT NULL REFERENCES campaigns(id),
  contact_id           TEXT NOT NULL DEFAULT '',
  address              TEXT NOT NULL,
  variables            TEXT NOT NULL DEFAULT '{}',
  status               TEXT NOT NULL,
  skip_reason          TEXT NOT NULL DEFAULT '',
  provider_message_id  TEXT NOT NULL DEFAULT '',
  error_code           TEXT NOT NULL DEFAULT '',
  error_desc           TEXT NOT NULL DEFAULT '',
  attempts             INTEGER NOT NULL DEFAULT 0,
  sent_at              INTEGER,
  delivered_at         INTEGER,
  read_at              INTEGER,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  UNIQUE (campaign_id, address)
);
CREATE INDEX recipients_by_status ON recipients(campaign_id, status, seq);
CREATE TABLE contacts (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  id          TEXT NOT NULL UNIQUE,
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  channel     TEXT NOT NULL,
  address     TEXT NOT NULL,
  attributes  TEXT NOT NULL DEFAULT '{}',
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  UNIQUE (account_id, channel, address)
);
CREATE INDEX contacts_by_account ON contacts(account_id, seq);
CREATE TABLE contact_tags (
  account_id   TEXT NOT NULL,
  tag          TEXT NOT NULL,
  contact_seq  INTEGER NOT NULL REFERENCES contacts(seq) ON DELETE CASCADE,
  PRIMARY KEY (account_id, tag, contact_seq)
) WITHOUT ROWID;
CREATE INDEX contact_tags_by_contact ON contact_tags(contact_seq);
CREATE TABLE contact_list_members (
  list_id      TEXT NOT NULL REFERENCES contact_lists(id) ON DELETE CASCADE,
  contact_seq  INTEGER NOT NULL REFERENCES contacts(seq) ON DELETE CASCADE,
  added_at     INTEGER NOT NULL,
  PRIMARY KEY (list_id, contact_seq)
) WITHOUT ROWID;
CREATE INDEX contact_list_members_by_contact ON contact_list_members(contact_seq);
CREATE INDEX contact_lists_by_account ON contact_lists(account_id, created_at, id);
)sql",
      // 4: contact imports. An import stages its checked rows in
      // contact_import_rows (no reader sees them); commit turns its state
      // from 'staging' to 'applying', after which the rows are applied to
      // the contacts in chunks (applied_through: the last row number done),
      // and a restart finishes an 'applying' import and deletes a 'staging'
      // one. `response` is what the stream answers, without the counts that
      // only applying knows (created, updated).
      R"sql(
CREATE TABLE contact_imports (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id       TEXT NOT NULL REFERENCES accounts(id),
  channel          TEXT NOT NULL,
  list_id          TEXT NOT NULL DEFAULT '',
  tags             TEXT NOT NULL DEFAULT '[]',
  state            TEXT NOT NULL,
  request_id       TEXT NOT NULL DEFAULT '',
  body_hash        TEXT NOT NULL DEFAULT '',
  response         BLOB,
  applied_through  INTEGER NOT NULL DEFAULT 0,
  created          INTEGER NOT NULL DEFAULT 0,
  updated          INTEGER NOT NULL DEFAULT 0,
  created_at       INTEGER NOT NULL
);
CREATE TABLE contact_import_rows (
  import_id   INTEGER NOT NULL,
  row         INTEGER NOT NULL,
  address     TEXT NOT NULL,
  attributes  TEXT NOT NULL,
  PRIMARY KEY (import_id, row)
) WITHOUT ROWID;
CREATE UNIQUE INDEX contact_import_rows_by_address
  ON contact_import_rows(import_id, address);
)sql",
      // 5: a campaign being deleted (deleting=1) is hidden from every read
      // at once; its recipients are then deleted in chunks, and last the
      // row itself. A restart resumes unfinished deletions.
      R"sql(
ALTER TABLE campaigns ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;
)sql",
      // 6: recipients keyed by the campaign's integer key (campaigns.seq)
      // instead of its text id: the (campaign, address) and status indexes
      // are half the size, so an import's commits rewrite half the pages.
      // Recipient seqs (and so rcp_ ids) are kept.
      R"sql(
ALTER TABLE campaigns ADD COLUMN seq INTEGER;
UPDATE campaigns SET seq = rowid;
CREATE UNIQUE INDEX campaigns_by_seq ON campaigns(seq);
CREATE TABLE recipients_v6 (
  seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
  campaign_seq         INTEGER NOT NULL REFERENCES campaigns(seq),
  contact_id           TEXT NOT NULL DEFAULT '',
  address              TEXT NOT NULL,
  variables            TEXT NOT NULL DEFAULT '{}',
  status               TEXT NOT NULL,
  skip_reason          TEXT NOT NULL DEFAULT '',
  provider_message_id  TEXT NOT NULL DEFAULT '',
  error_code           TEXT NOT NULL DEFAULT '',
  error_desc           TEXT NOT NULL DEFAULT '',
  attempts             INTEGER NOT NULL DEFAULT 0,
  sent_at              INTEGER,
  delivered_at         INTEGER,
  read_at              INTEGER,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  UNIQUE (campaign_seq, address)
);
INSERT INTO recipients_v6(seq, campaign_seq, contact_id, address, variables,
  status, skip_reason, provider_message_id, error_code, error_desc, attempts,
  sent_at, delivered_at, read_at, created_at, updated_at)
SELECT r.seq, c.seq, r.contact_id, r.address, r.variables, r.status,
  r.skip_reason, r.provider_message_id, r.error_code, r.error_desc,
  r.attempts, r.sent_at, r.delivered_at, r.read_at, r.created_at, r.updated_at
FROM recipients r JOIN campaigns c ON c.id = r.campaign_id;
INSERT INTO sqlite_sequence(name, seq) SELECT 'recipients_v6', 0
  WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'recipients_v6');
UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT seq
  FROM sqlite_sequence WHERE name = 'recipients'), 0))
  WHERE name = 'recipients_v6';
DROP TABLE recipients;
ALTER TABLE recipients_v6 RENAME TO recipients;
CREATE INDEX recipients_by_status ON recipients(campaign_seq, status, seq);
)sql",
      // 7: dispatch. `retries` counts RetryFailed re-queues of a recipient
      // (part of its idempotency key, so a retried send is a new message
      // while a resend after a crash is not); receipts find recipients by
      // provider message id.
      R"sql(
ALTER TABLE recipients ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
CREATE INDEX recipients_by_provider_id ON recipients(provider_message_id)
  WHERE provider_message_id <> '';
)sql",
      // 8: money. `prices` is each account's price table; `transactions`
      // the ledger (every credit, reservation, debit and release). A
      // campaign keeps what it still holds reserved, what it was debited,
      // and the prices it reserved with (`billing`, "" = free). Recipients
      // get their destination country and billable units (SMS segments),
      // filled in when a cost is first needed; `units_key` is the message
      // the units were counted for, `units_through` the last row done.
      R"sql(
CREATE TABLE prices (
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  channel     TEXT NOT NULL,
  country     TEXT NOT NULL,
  amount      INTEGER NOT NULL,
  PRIMARY KEY (account_id, channel, country)
) WITHOUT ROWID;
CREATE TABLE transactions (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id     TEXT NOT NULL REFERENCES accounts(id),
  type           TEXT NOT NULL,
  amount         INTEGER NOT NULL,
  campaign_id    TEXT NOT NULL DEFAULT '',
  description    TEXT NOT NULL DEFAULT '',
  balance_after  INTEGER NOT NULL,
  reserved_after INTEGER NOT NULL,
  created_at     INTEGER NOT NULL
);
CREATE INDEX transactions_by_account ON transactions(account_id, seq);
ALTER TABLE campaigns ADD COLUMN credits_reserved INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN credits_debited INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN billing TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN units_key TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN units_through INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN country TEXT;
ALTER TABLE recipients ADD COLUMN units INTEGER;
)sql",
      // 9: seed 003's campaign fields: WhatsApp template components (JSON
      // array, as templates.components) and per-contact variables (JSON
      // object: contact id -> {name: value}).
      R"sql(
ALTER TABLE campaigns ADD COLUMN template_components TEXT NOT NULL DEFAULT '[]';
ALTER TABLE campaigns ADD COLUMN recipient_variables TEXT NOT NULL DEFAULT '{}';
)sql",
      // 10: exactly once with vendors that do not de-duplicate: 1 while a
      // queued recipient's message may be with such a provider (marked
      // before the call, cleared with its recorded outcome).
      R"sql(
ALTER TABLE recipients ADD COLUMN handed INTEGER NOT NULL DEFAULT 0;
)sql",
      // 11: email: a template's and a campaign's subject and HTML body, with
      // placeholders ('' = none; a campaign's '' = its template's).
      R"sql(
ALTER TABLE templates ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE templates ADD COLUMN html_body TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN html_body TEXT NOT NULL DEFAULT '';
)sql",
      // 12: failover: the provider that sent (or last tried) a recipient's
      // message ('' = none yet, or sent before this version: then its
      // sender's provider). Receipts are matched by it.
      R"sql(
ALTER TABLE recipients ADD COLUMN provider TEXT NOT NULL DEFAULT '';
)sql",
      // 13: imports that stay linear in their size. A UNIQUE(campaign_seq,
      // address) index filled in a file's order rewrites most of its pages
      // at every commit once it outgrows the cache (at 5M rows, ~2 KB of
      // WAL per row). Recipients are now appended in row order with no
      // address index, and each campaign's addresses are kept apart in
      // recipient_addresses, filled in address order when an import has
      // been staged and checked for duplicates (SettleRecipientImport).
      // import_row / import_line: where an imported recipient came from in
      // its file (row number; CSV line, 0 for JSON rows), which names a
      // duplicate found then. NULL for contact audiences and older rows.
      R"sql(
CREATE TABLE recipients_v13 (
  seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
  campaign_seq         INTEGER NOT NULL REFERENCES campaigns(seq),
  contact_id           TEXT NOT NULL DEFAULT '',
  address              TEXT NOT NULL,
  variables            TEXT NOT NULL DEFAULT '{}',
  status               TEXT NOT NULL,
  skip_reason          TEXT NOT NULL DEFAULT '',
  provider_message_id  TEXT NOT NULL DEFAULT '',
  error_code           TEXT NOT NULL DEFAULT '',
  error_desc           TEXT NOT NULL DEFAULT '',
  attempts             INTEGER NOT NULL DEFAULT 0,
  sent_at              INTEGER,
  delivered_at         INTEGER,
  read_at              INTEGER,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  retries              INTEGER NOT NULL DEFAULT 0,
  country              TEXT,
  units                INTEGER,
  handed               INTEGER NOT NULL DEFAULT 0,
  provider             TEXT NOT NULL DEFAULT '',
  import_row           INTEGER,
  import_line          INTEGER
);
INSERT INTO recipients_v13(seq, campaign_seq, contact_id, address, variables,
  status, skip_reason, provider_message_id, error_code, error_desc, attempts,
  sent_at, delivered_at, read_at, created_at, updated_at, retries, country,
  units, handed, provider)
SELECT seq, campaign_seq, contact_id, address, variables, status,
  skip_reason, provider_message_id, error_code, error_desc, attempts,
  sent_at, delivered_at, read_at, created_at, updated_at, retries, country,
  units, handed, provider
FROM recipients ORDER BY seq;
INSERT INTO sqlite_sequence(name, seq) SELECT 'recipients_v13', 0
  WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence
                    WHERE name = 'recipients_v13');
UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT seq
  FROM sqlite_sequence WHERE name = 'recipients'), 0))
  WHERE name = 'recipients_v13';
CREATE TABLE recipient_addresses (
  campaign_seq  INTEGER NOT NULL REFERENCES campaigns(seq),
  address       TEXT NOT NULL,
  seq           INTEGER NOT NULL,
  PRIMARY KEY (campaign_seq, address)
) WITHOUT ROWID;
INSERT INTO recipient_addresses(campaign_seq, address, seq)
SELECT campaign_seq, address, seq FROM recipients
  ORDER BY campaign_seq, address;
DROP TABLE recipients;
ALTER TABLE recipients_v13 RENAME TO recipients;
CREATE INDEX recipients_by_status ON recipients(campaign_seq, status, seq);
CREATE INDEX recipients_by_provider_id ON recipients(provider_message_id)
  WHERE provider_message_id <> '';
)sql",
  };
  return *kMigrations;
}

}  // namespace

int LatestSchemaVersion() { return static_cast<int>(Migrations().size()); }

absl::StatusOr<int> Migrate(SQLite::Database& db) {
  return MigrateTo(db, LatestSchemaVersion());
}

absl::StatusOr<int> MigrateTo(SQLite::Database& db, int target) {
  const int latest = LatestSchemaVersion();
  if (target < 1 || target > latest) {
    return absl::InvalidArgumentError(absl::StrCat(
        "schema version ", target, " is not between 1 and ", latest));
  }
  int version = db.execAndGet("PRAGMA user_version").getInt();
  if (version > latest) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database schema version ", version, " is newer than this build (",
        latest, "): run the campaignd that wrote it, or a newer one"));
  }
  for (; version < target; ++version) {
    SQLite::Transaction txn(db, SQLite::TransactionBehavior::IMMEDIATE);
    db.exec(Migrations()[version]);
    db.exec(absl::StrCat("PRAGMA user_version=", version + 1));
    txn.commit();
  }
  return version;
}

}  // namespace campaigns::storage
