// Builders of domain values for storage tests (fresh ids, the current time,
// defaults that pass validation) and checks of the statuses they answer.
// Used by tests/storage (SQLite) and tests/conformance (every engine).
#ifndef CAMPAIGND_TESTS_SUPPORT_BUILDERS_H_
#define CAMPAIGND_TESTS_SUPPORT_BUILDERS_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/model.h"
#include "server/domain/repository.h"

namespace campaigns::test_builders {

// Asserts code, reason and (if non-empty) the single offending field.
inline void ExpectError(const absl::Status& status, absl::StatusCode code,
                        const std::string& reason,
                        const std::string& field = "") {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_EQ(errors::ReasonOf(status), reason) << status;
  if (!field.empty()) {
    std::vector<std::pair<std::string, std::string>> fields;
    for (const errors::FieldViolation& v : errors::FieldViolationsOf(status)) {
      fields.emplace_back(v.field, v.description);
    }
    EXPECT_THAT(fields,
                ::testing::ElementsAre(::testing::Pair(field, ::testing::_)))
        << status;
  }
}

inline void ExpectNotFound(const absl::Status& status) {
  ExpectError(status, absl::StatusCode::kNotFound, "NOT_FOUND");
}

// A key of `account_id` whose secret is `secret`.
inline ApiKey NewKey(const std::string& account_id, const std::string& secret) {
  ApiKey k;
  k.id = NewId(kApiKeyPrefix);
  k.account_id = account_id;
  k.name = "test";
  k.prefix = secret.substr(0, 8);
  k.key_hash = Sha256Hex(secret);
  k.created_at = absl::Now();
  return k;
}

// A new account and its first key, with `secret` as the key's secret.
inline AccountWithKey NewAccount(const std::string& name,
                                 const std::string& secret) {
  const absl::Time now = absl::Now();
  AccountWithKey a;
  a.account.id = NewId(kAccountPrefix);
  a.account.name = name;
  a.account.created_at = a.account.updated_at = now;
  a.key = NewKey(a.account.id, secret);
  return a;
}

inline Template NewTemplate(const std::string& account, const std::string& name,
                            Channel channel = Channel::kSms,
                            TemplateStatus status = TemplateStatus::kApproved,
                            const std::string& language = "en") {
  Template t;
  t.id = NewId(kTemplatePrefix);
  t.account_id = account;
  t.name = name;
  t.language = language;
  t.channel = channel;
  t.body = "Hello {{name}}";
  t.status = status;
  t.created_at = t.updated_at = absl::Now();
  return t;
}

inline Sender NewSender(const std::string& account,
                        const std::string& sender_id,
                        Channel channel = Channel::kSms) {
  Sender s;
  s.id = NewId(kSenderPrefix);
  s.account_id = account;
  s.sender_id = sender_id;
  s.channel = channel;
  s.tier = SenderTier::kTier10k;
  s.provider = "simulator";
  s.created_at = s.updated_at = absl::Now();
  return s;
}

}  // namespace campaigns::test_builders

#endif  // CAMPAIGND_TESTS_SUPPORT_BUILDERS_H_
