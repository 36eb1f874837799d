#include "storage/postgres/migrations.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace campaigns::storage::postgres {
namespace {

// The same data as SQLite's schema at its version 13, in PostgreSQL's
// types: times are BIGINT microseconds since the Unix epoch (UTC), enums
// their lowercase API names, maps and lists JSON text, flags BOOLEAN. Plus
// what several instances need: `instances` (who is alive) and `leases`
// (who owns a piece of work until when).
const std::vector<const char*>& Migrations() {
  static const auto* const kMigrations = new std::vector<const char*>{
      // 1: everything SQLite's schema 13 holds, and the leases.
      R"sql(
CREATE TABLE meta (
  key    TEXT PRIMARY KEY,
  value  TEXT NOT NULL
);
-- The key of recipient ids (RecipientIdCodec): 128 bits from two random
-- UUIDs (pg_strong_random), as 32 hex digits.
INSERT INTO meta(key, value) VALUES ('recipient_id_key', upper(left(encode(
  sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text,
                    'UTF8')), 'hex'), 32)));
CREATE TABLE accounts (
  id               TEXT PRIMARY KEY,
  name             TEXT NOT NULL,
  admin            BOOLEAN NOT NULL DEFAULT FALSE,
  currency         TEXT NOT NULL,
  credits_balance  BIGINT NOT NULL DEFAULT 0,
  credits_reserved BIGINT NOT NULL DEFAULT 0,
  created_at       BIGINT NOT NULL,
  updated_at       BIGINT NOT NULL
);
CREATE TABLE api_keys (
  id          TEXT PRIMARY KEY,
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  name        TEXT NOT NULL,
  prefix      TEXT NOT NULL,
  key_hash    TEXT NOT NULL UNIQUE,
  created_at  BIGINT NOT NULL,
  revoked_at  BIGINT
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
  subject          TEXT NOT NULL DEFAULT '',
  html_body        TEXT NOT NULL DEFAULT '',
  created_at       BIGINT NOT NULL,
  updated_at       BIGINT NOT NULL,
  UNIQUE (account_id, name, language)
);
CREATE INDEX templates_by_account ON templates(account_id, created_at, id);
CREATE TABLE senders (
  id          TEXT PRIMARY KEY,
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  sender_id   TEXT NOT NULL,
  channel     TEXT NOT NULL,
  tier        TEXT NOT NULL,
  verified    BOOLEAN NOT NULL DEFAULT FALSE,
  provider    TEXT NOT NULL,
  created_at  BIGINT NOT NULL,
  updated_at  BIGINT NOT NULL,
  UNIQUE (account_id, channel, sender_id)
);
CREATE INDEX senders_by_account ON senders(account_id, created_at, id);
CREATE TABLE contact_lists (
  id          TEXT PRIMARY KEY,
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  name        TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  created_at  BIGINT NOT NULL,
  updated_at  BIGINT NOT NULL
);
CREATE INDEX contact_lists_by_account
  ON contact_lists(account_id, created_at, id);
CREATE TABLE campaigns (
  id                    TEXT PRIMARY KEY,
  seq                   BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
  account_id            TEXT NOT NULL REFERENCES accounts(id),
  name                  TEXT NOT NULL,
  channel               TEXT NOT NULL,
  sender_id             TEXT NOT NULL,
  sender_ref            TEXT NOT NULL,
  body                  TEXT NOT NULL DEFAULT '',
  subject               TEXT NOT NULL DEFAULT '',
  html_body             TEXT NOT NULL DEFAULT '',
  template_id           TEXT NOT NULL DEFAULT '',
  template_name         TEXT NOT NULL DEFAULT '',
  template_lang         TEXT NOT NULL DEFAULT '',
  template_components   TEXT NOT NULL DEFAULT '[]',
  variable_mapping      TEXT NOT NULL DEFAULT '{}',
  recipient_variables   TEXT NOT NULL DEFAULT '{}',
  contact_list_id       TEXT NOT NULL DEFAULT '',
  tags                  TEXT NOT NULL DEFAULT '[]',
  contact_ids           TEXT NOT NULL DEFAULT '[]',
  status                TEXT NOT NULL,
  pause_reason          TEXT NOT NULL DEFAULT '',
  failure_reason        TEXT NOT NULL DEFAULT '',
  total                 BIGINT NOT NULL DEFAULT 0,
  queued                BIGINT NOT NULL DEFAULT 0,
  sent                  BIGINT NOT NULL DEFAULT 0,
  delivered             BIGINT NOT NULL DEFAULT 0,
  read                  BIGINT NOT NULL DEFAULT 0,
  failed                BIGINT NOT NULL DEFAULT 0,
  skipped               BIGINT NOT NULL DEFAULT 0,
  batch_size            BIGINT NOT NULL,
  batch_delay_us        BIGINT NOT NULL DEFAULT 0,
  rate_limit_per_second BIGINT NOT NULL DEFAULT 0,
  validity_period_us    BIGINT,
  max_lateness_us       BIGINT,
  schedule_at           BIGINT,
  started_at            BIGINT,
  sent_at               BIGINT,
  completed_at          BIGINT,
  cancelled_at          BIGINT,
  import_floor          BIGINT,
  deleting              BOOLEAN NOT NULL DEFAULT FALSE,
  credits_reserved      BIGINT NOT NULL DEFAULT 0,
  credits_debited       BIGINT NOT NULL DEFAULT 0,
  billing               TEXT NOT NULL DEFAULT '',
  units_key             TEXT NOT NULL DEFAULT '',
  units_through         BIGINT NOT NULL DEFAULT 0,
  created_at            BIGINT NOT NULL,
  updated_at            BIGINT NOT NULL
);
CREATE INDEX campaigns_by_account ON campaigns(account_id, created_at, id);
CREATE INDEX campaigns_by_status ON campaigns(status);
CREATE TABLE idempotency_keys (
  account_id   TEXT NOT NULL,
  method       TEXT NOT NULL,
  request_id   TEXT NOT NULL,
  body_hash    TEXT NOT NULL,
  resource_id  TEXT NOT NULL,
  response     BYTEA,
  created_at   BIGINT NOT NULL,
  PRIMARY KEY (account_id, method, request_id)
);
CREATE TABLE suppressions (
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  channel     TEXT NOT NULL,
  address     TEXT NOT NULL,
  reason      TEXT NOT NULL,
  note        TEXT NOT NULL DEFAULT '',
  created_at  BIGINT NOT NULL,
  PRIMARY KEY (account_id, address, channel)
);
CREATE INDEX suppressions_by_time ON suppressions(account_id, created_at);
CREATE TABLE contacts (
  seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id          TEXT NOT NULL UNIQUE,
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  channel     TEXT NOT NULL,
  address     TEXT NOT NULL,
  attributes  TEXT NOT NULL DEFAULT '{}',
  created_at  BIGINT NOT NULL,
  updated_at  BIGINT NOT NULL,
  UNIQUE (account_id, channel, address)
);
CREATE INDEX contacts_by_account ON contacts(account_id, seq);
CREATE TABLE contact_tags (
  account_id   TEXT NOT NULL,
  tag          TEXT NOT NULL,
  contact_seq  BIGINT NOT NULL REFERENCES contacts(seq) ON DELETE CASCADE,
  PRIMARY KEY (account_id, tag, contact_seq)
);
CREATE INDEX contact_tags_by_contact ON contact_tags(contact_seq);
CREATE TABLE contact_list_members (
  list_id      TEXT NOT NULL REFERENCES contact_lists(id) ON DELETE CASCADE,
  contact_seq  BIGINT NOT NULL REFERENCES contacts(seq) ON DELETE CASCADE,
  added_at     BIGINT NOT NULL,
  PRIMARY KEY (list_id, contact_seq)
);
CREATE INDEX contact_list_members_by_contact
  ON contact_list_members(contact_seq);
CREATE TABLE contact_imports (
  id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id       TEXT NOT NULL REFERENCES accounts(id),
  channel          TEXT NOT NULL,
  list_id          TEXT NOT NULL DEFAULT '',
  tags             TEXT NOT NULL DEFAULT '[]',
  state            TEXT NOT NULL,
  request_id       TEXT NOT NULL DEFAULT '',
  body_hash        TEXT NOT NULL DEFAULT '',
  response         BYTEA,
  applied_through  BIGINT NOT NULL DEFAULT 0,
  created          BIGINT NOT NULL DEFAULT 0,
  updated          BIGINT NOT NULL DEFAULT 0,
  created_at       BIGINT NOT NULL
);
CREATE TABLE contact_import_rows (
  import_id   BIGINT NOT NULL,
  row         BIGINT NOT NULL,
  address     TEXT NOT NULL,
  attributes  TEXT NOT NULL,
  PRIMARY KEY (import_id, row),
  UNIQUE (import_id, address)
);
CREATE TABLE prices (
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  channel     TEXT NOT NULL,
  country     TEXT NOT NULL,
  amount      BIGINT NOT NULL,
  PRIMARY KEY (account_id, channel, country)
);
CREATE TABLE transactions (
  seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id     TEXT NOT NULL REFERENCES accounts(id),
  type           TEXT NOT NULL,
  amount         BIGINT NOT NULL,
  campaign_id    TEXT NOT NULL DEFAULT '',
  description    TEXT NOT NULL DEFAULT '',
  balance_after  BIGINT NOT NULL,
  reserved_after BIGINT NOT NULL,
  created_at     BIGINT NOT NULL
);
CREATE INDEX transactions_by_account ON transactions(account_id, seq);
-- seq: imports stage rows at sequence numbers they reserve, hence BY
-- DEFAULT (an explicit value is allowed).
CREATE TABLE recipients (
  seq                  BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  campaign_seq         BIGINT NOT NULL REFERENCES campaigns(seq),
  contact_id           TEXT NOT NULL DEFAULT '',
  address              TEXT NOT NULL,
  variables            TEXT NOT NULL DEFAULT '{}',
  status               TEXT NOT NULL,
  skip_reason          TEXT NOT NULL DEFAULT '',
  provider             TEXT NOT NULL DEFAULT '',
  provider_message_id  TEXT NOT NULL DEFAULT '',
  error_code           TEXT NOT NULL DEFAULT '',
  error_desc           TEXT NOT NULL DEFAULT '',
  attempts             BIGINT NOT NULL DEFAULT 0,
  retries              BIGINT NOT NULL DEFAULT 0,
  handed               BOOLEAN NOT NULL DEFAULT FALSE,
  country              TEXT,
  units                BIGINT,
  import_row           BIGINT,
  import_line          BIGINT,
  sent_at              BIGINT,
  delivered_at         BIGINT,
  read_at              BIGINT,
  created_at           BIGINT NOT NULL,
  updated_at           BIGINT NOT NULL
);
CREATE INDEX recipients_by_status ON recipients(campaign_seq, status, seq);
CREATE INDEX recipients_by_provider_id ON recipients(provider_message_id)
  WHERE provider_message_id <> '';
CREATE TABLE recipient_addresses (
  campaign_seq  BIGINT NOT NULL REFERENCES campaigns(seq),
  address       TEXT NOT NULL,
  seq           BIGINT NOT NULL,
  PRIMARY KEY (campaign_seq, address)
);
-- Several instances on one database. An instance row is its heartbeat; a
-- lease names a piece of work (e.g. "campaign:cmp_...") and the instance
-- that owns it until expires_at. A lease whose owner's heartbeat stopped
-- may be taken once it expires.
CREATE TABLE instances (
  id            TEXT PRIMARY KEY,
  started_at    BIGINT NOT NULL,
  heartbeat_at  BIGINT NOT NULL
);
CREATE TABLE leases (
  resource    TEXT PRIMARY KEY,
  owner       TEXT NOT NULL,
  expires_at  BIGINT NOT NULL
);
CREATE INDEX leases_by_owner ON leases(owner);
)sql",
      // 2: what work sharing needs besides: a lease's epoch (raised at each
      // change of owner, to fence a former owner's writes) and each
      // instance's provider fingerprints (to detect two instances that
      // configure one provider name differently).
      R"sql(
ALTER TABLE leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT 1;
ALTER TABLE instances ADD COLUMN providers TEXT NOT NULL DEFAULT '{}';
CREATE INDEX instances_by_heartbeat ON instances(heartbeat_at);
)sql",
      // 3: a marker row per group commit (Database), so a COMMIT whose answer
      // was lost is judged by its own row, not by a transaction id the
      // server may hand out again after a crash.
      R"sql(
CREATE TABLE commit_markers (
  token  TEXT PRIMARY KEY,
  at     BIGINT NOT NULL
);
CREATE INDEX commit_markers_by_time ON commit_markers(at);
)sql",
      // 4: every change of a campaign or an API key is announced to the
      // other instances (Listener: kCampaignsChanged, kApiKeysChanged) by
      // the transaction that makes it, whichever code path that is.
      R"sql(
CREATE FUNCTION campaignd_announce() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  account TEXT;
  id TEXT;
BEGIN
  IF TG_OP = 'DELETE' THEN
    account := OLD.account_id;
    id := OLD.id;
  ELSE
    account := NEW.account_id;
    id := NEW.id;
  END IF;
  PERFORM pg_notify(TG_ARGV[0], account || ' ' || id);
  RETURN NULL;
END
$$;
CREATE TRIGGER campaigns_announce AFTER INSERT OR UPDATE OR DELETE
  ON campaigns FOR EACH ROW
  EXECUTE FUNCTION campaignd_announce('campaignd_campaigns');
CREATE TRIGGER api_keys_announce AFTER INSERT OR UPDATE OR DELETE
  ON api_keys FOR EACH ROW
  EXECUTE FUNCTION campaignd_announce('campaignd_api_keys');
)sql",
      // 5: a campaign's import or deletion, and a contact import, get an
      // owner: the instance that runs it (its `instances` id; '' for none
      // known). Another instance rolls back, finishes or purges it only
      // once its owner is dead (owners.h).
      R"sql(
ALTER TABLE campaigns ADD COLUMN work_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE contact_imports ADD COLUMN owner TEXT NOT NULL DEFAULT '';
)sql",
      // 6: the instance that marked a recipient handed ('' without a
      // fence). Another instance treats the mark as in doubt only once
      // that one is dead: until then its provider call may still answer,
      // and its outcome be recorded (DispatchStore::LeaseRecipients). And
      // each instance's own lease ttl (0: unknown), so that whether it is
      // dead is judged by the longer of its ttl and the judge's (owners.h).
      R"sql(
ALTER TABLE recipients ADD COLUMN handed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN ttl_us BIGINT NOT NULL DEFAULT 0;
)sql",
      // 7: a campaign's row version, one more with every update, whichever
      // code path makes it (Campaign::version): snapshots read by different
      // paths and instances are published to watchers in order by it.
      R"sql(
ALTER TABLE campaigns ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
CREATE FUNCTION campaignd_next_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.version := OLD.version + 1;
  RETURN NEW;
END
$$;
CREATE TRIGGER campaigns_version BEFORE UPDATE ON campaigns
  FOR EACH ROW EXECUTE FUNCTION campaignd_next_version();
)sql",
  };
  return *kMigrations;
}

}  // namespace

int LatestSchemaVersion() { return static_cast<int>(Migrations().size()); }

absl::StatusOr<int> SchemaVersion(Connection& conn) {
  absl::StatusOr<Rows> exists =
      conn.Query("SELECT to_regclass('campaignd_schema') IS NOT NULL");
  if (!exists.ok()) return exists.status();
  if (exists->Text(0, 0) != "t") return 0;
  absl::StatusOr<Rows> version =
      conn.Query("SELECT COALESCE(MAX(version), 0) FROM campaignd_schema");
  if (!version.ok()) return version.status();
  int v = 0;
  if (!absl::SimpleAtoi(version->Text(0, 0), &v)) {
    return absl::InternalError("campaignd_schema: version is not a number");
  }
  return v;
}

absl::StatusOr<int> Migrate(Connection& conn) {
  return MigrateTo(conn, LatestSchemaVersion());
}

absl::StatusOr<int> MigrateTo(Connection& conn, int target) {
  const int latest = LatestSchemaVersion();
  if (target < 1 || target > latest) {
    return absl::InvalidArgumentError(absl::StrCat(
        "schema version ", target, " is not between 1 and ", latest));
  }
  // Session-level: held across the migrations' own transactions, released
  // below or, if this process dies, by the server when the session ends.
  // Without the session's lock_timeout: an instance starting while another
  // migrates waits for it however long it takes, and so does DDL waiting
  // for the locks of instances still running an older build.
  if (absl::Status locked = conn.Exec(
          absl::StrCat("SET lock_timeout = 0; SELECT pg_advisory_lock(",
                       kMigrationLock, ")"));
      !locked.ok()) {
    return locked;
  }
  absl::StatusOr<int> result = [&]() -> absl::StatusOr<int> {
    // A build from before several instances could share a database holds
    // this lock exclusively while it runs, and sends without leases: this
    // build must not migrate under it, nor send beside it. (Once migrated,
    // such a build refuses to start: the schema is newer than it knows.)
    absl::StatusOr<Rows> sole = conn.Query(absl::StrCat(
        "SELECT pg_try_advisory_lock_shared(", kSoleInstanceLock, ")"));
    if (!sole.ok()) return sole.status();
    if (sole->Text(0, 0) != "t") {
      return absl::FailedPreconditionError(
          "an older campaignd (one instance per database) is running on this "
          "database: stop it before starting this build, which lets several "
          "instances share the database");
    }
    if (absl::Status unlocked = conn.Exec(absl::StrCat(
            "SELECT pg_advisory_unlock_shared(", kSoleInstanceLock, ")"));
        !unlocked.ok()) {
      return unlocked;
    }
    if (absl::Status made =
            conn.Exec("CREATE TABLE IF NOT EXISTS campaignd_schema ("
                      " version INTEGER PRIMARY KEY,"
                      " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
        !made.ok()) {
      return made;
    }
    absl::StatusOr<int> version = SchemaVersion(conn);
    if (!version.ok()) return version.status();
    if (*version > latest) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database schema version ", *version, " is newer than this build (",
          latest, "): run the campaignd that wrote it, or a newer one"));
    }
    for (int v = *version; v < target; ++v) {
      absl::Status applied = conn.Exec(
          absl::StrCat("BEGIN;\n", Migrations()[v],
                       "\nINSERT INTO campaignd_schema(version) VALUES (",
                       v + 1, ");\nCOMMIT;"));
      if (!applied.ok()) {
        (void)conn.Exec("ROLLBACK");
        return absl::Status(
            applied.code(),
            absl::StrCat("schema migration ", v + 1, ": ", applied.message()));
      }
    }
    return std::max(*version, target);
  }();
  absl::Status unlocked = conn.Exec(absl::StrCat(
      "SELECT pg_advisory_unlock(", kMigrationLock,
      "); SET lock_timeout = ", absl::ToInt64Milliseconds(kLockTimeout)));
  if (result.ok() && !unlocked.ok()) return unlocked;
  return result;
}

}  // namespace campaigns::storage::postgres
