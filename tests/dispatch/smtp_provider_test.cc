// The smtp provider against a real SMTP server on 127.0.0.1: Debian's
// aiosmtpd (tests/peers/smtp_sink.py), started and stopped by each test.
// What arrived is read back with Python's `email` parser, so the MIME shape,
// the RFC 2047 subject and the headers are checked by an independent
// implementation; reply classes, AUTH, STARTTLS, SMTPS, connection reuse and
// a server that hangs in DATA are checked end to end.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/dispatch/providers/smtp.h"
#include "tests/dispatch/fake_vendor.h"

extern char** environ;

namespace campaigns::dispatch {
namespace {

using testing::SendAndWait;
using testing::SendOneAndWait;

constexpr char kPython[] = "/usr/bin/python3";

std::string SinkScript() {
  return std::string(CAMPAIGND_SOURCE_DIR) + "/tests/peers/smtp_sink.py";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The sink as a child process in a temporary directory of its own; the
// destructor stops it and removes the directory.
class SmtpSink {
 public:
  explicit SmtpSink(std::vector<std::string> flags) {
    char tmpl[] = "/tmp/smtp-sink-XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::vector<std::string> args = {kPython, SinkScript(), "serve", "--dir",
                                     dir_};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, kPython, nullptr, nullptr, argv.data(), environ) !=
        0) {
      pid_ = -1;
      ADD_FAILURE() << "cannot start " << kPython;
      return;
    }
    // Waits for the port file (the sink writes it once it listens).
    for (int i = 0; i < 1500 && port_ == 0; ++i) {
      const std::string p = ReadFile(dir_ + "/port");
      if (!p.empty()) {
        port_ = std::stoi(p);
        break;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_NE(port_, 0) << "the SMTP sink did not start";
  }

  ~SmtpSink() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  int port() const { return port_; }
  std::string url(const std::string& scheme = "smtp") const {
    return absl::StrCat(scheme, "://127.0.0.1:", port_);
  }
  std::string cert() const { return dir_ + "/cert.pem"; }
  bool hanging() const { return !ReadFile(dir_ + "/hanging").empty(); }
  int connections() const { return std::stoi(ReadFile(dir_ + "/connections")); }

  // What Python's email parser reads in each message received, in order.
  nlohmann::json Messages() const {
    const std::string cmd =
        absl::StrCat(kPython, " ", SinkScript(), " summarize ", dir_);
    FILE* f = popen(cmd.c_str(), "r");
    if (f == nullptr) return nlohmann::json::array();
    std::string out;
    char buf[4096];
    size_t n = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    pclose(f);
    return nlohmann::json::parse(out, nullptr, false);
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

OutgoingMessage Email(const std::string& to, const std::string& rcpt_id) {
  OutgoingMessage m;
  m.idempotency_key = "cmp_1:" + rcpt_id;
  m.campaign_id = "cmp_1";
  m.recipient_id = rcpt_id;
  m.channel = Channel::kEmail;
  m.address = to;
  m.subject = "Spring sale";
  m.text = "Hello Ann,\nour spring sale starts today.\n";
  return m;
}

SmtpOptions Options(const SmtpSink& sink) {
  SmtpOptions o;
  o.name = "mail";
  o.url = sink.url();
  o.from = "news@acme.test";
  o.starttls = StartTls::kNever;
  o.max_in_flight = 4;
  o.timeout = absl::Seconds(10);
  return o;
}

std::unique_ptr<SmtpProvider> Make(SmtpOptions o) {
  auto p = SmtpProvider::Create(std::move(o));
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

TEST(SmtpProviderTest, SendsOnePlainTextMessagePerRecipient) {
  SmtpSink sink({});
  SmtpOptions o = Options(sink);
  o.from = "Acme Store <news@acme.test>";
  auto p = Make(o);
  std::vector<OutgoingMessage> batch = {Email("ann@example.com", "rcp_1"),
                                        Email("bob@example.org", "rcp_2")};
  const auto results = SendAndWait(*p, batch);
  ASSERT_EQ(results.size(), 2u);
  for (const SendResult& r : results) {
    EXPECT_EQ(r.status, SendStatus::kAccepted) << r.error_desc;
  }
  EXPECT_NE(results[0].provider_message_id, results[1].provider_message_id);
  const nlohmann::json msgs = sink.Messages();
  ASSERT_EQ(msgs.size(), 2u) << msgs.dump();
  std::set<std::string> to;
  for (const auto& m : msgs) {
    EXPECT_EQ(m["mail_from"], "news@acme.test");
    ASSERT_EQ(m["rcpt_tos"].size(), 1u);
    EXPECT_EQ(m["to"], m["rcpt_tos"][0]);
    to.insert(m["to"].get<std::string>());
    EXPECT_EQ(m["from_addr"], "news@acme.test");
    EXPECT_EQ(m["from_name"], "Acme Store");
    EXPECT_EQ(m["subject"], "Spring sale");
    EXPECT_TRUE(m["date_ok"].get<bool>());
    EXPECT_EQ(m["mime_version"], "1.0");
    EXPECT_EQ(m["content_type"], "text/plain");
    EXPECT_EQ(m["defects"], 0);
    EXPECT_LE(m["longest_line"].get<int>(), 998);
    EXPECT_EQ(m["list_unsubscribe"], "");
    ASSERT_EQ(m["parts"].size(), 1u);
    EXPECT_EQ(m["parts"][0]["charset"], "utf-8");
    EXPECT_EQ(m["parts"][0]["content"],
              "Hello Ann,\nour spring sale starts today.\n");
    const std::string id = m["message_id"];
    EXPECT_TRUE(id == results[0].provider_message_id ||
                id == results[1].provider_message_id)
        << id;
    EXPECT_TRUE(absl::EndsWith(id, "@acme.test>")) << id;
  }
  EXPECT_EQ(to, (std::set<std::string>{"ann@example.com", "bob@example.org"}));
}

TEST(SmtpProviderTest, Utf8SubjectAndNameRoundTripThroughRfc2047) {
  SmtpSink sink({});
  SmtpOptions o = Options(sink);
  o.from = "\"Ünïcødé Störe, Inc.\" <news@acme.test>";
  auto p = Make(o);
  OutgoingMessage m = Email("ann@example.com", "rcp_1");
  // Long enough to need several encoded-words, with 2-, 3- and 4-byte
  // characters that must not be split.
  m.subject =
      "Grüße aus Köln — 春のセール開始！ 🎉🎉 Ünïcødé sübjéct that goes on "
      "and on and on to need folding 😀 ok";
  m.text = "Grüße 🎉\n";
  const SendResult r = SendOneAndWait(*p, m);
  ASSERT_EQ(r.status, SendStatus::kAccepted) << r.error_desc;
  const nlohmann::json msgs = sink.Messages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0]["subject"], m.subject);
  EXPECT_EQ(msgs[0]["from_name"], "Ünïcødé Störe, Inc.");
  EXPECT_EQ(msgs[0]["parts"][0]["content"], m.text);
  EXPECT_EQ(msgs[0]["defects"], 0);
  EXPECT_LE(msgs[0]["longest_line"].get<int>(), 9 + 75);
}

TEST(SmtpProviderTest, EncodedWordsAreAtMost75Characters) {
  const std::string subject(200, 'x');
  const std::string encoded = EncodeHeaderText(subject + "é", 9);
  size_t start = 0;
  int words = 0;
  while (start < encoded.size()) {
    size_t end = encoded.find("\r\n", start);
    if (end == std::string::npos) end = encoded.size();
    std::string word = encoded.substr(start, end - start);
    if (!word.empty() && word[0] == ' ') word.erase(0, 1);
    EXPECT_LE(word.size(), 75u) << word;
    EXPECT_TRUE(absl::StartsWith(word, "=?UTF-8?B?")) << word;
    EXPECT_TRUE(absl::EndsWith(word, "?=")) << word;
    ++words;
    start = end + 2;
  }
  EXPECT_GE(words, 5);
  EXPECT_EQ(EncodeHeaderText("Plain ASCII", 9), "Plain ASCII");
  // A CR/LF can never end the header early.
  EXPECT_EQ(EncodeHeaderText("a\r\nBcc: x@y", 9).find("\r\nBcc"),
            std::string::npos);
}

TEST(SmtpProviderTest, HtmlMakesMultipartAlternativeWithUnsubscribe) {
  SmtpSink sink({});
  SmtpOptions o = Options(sink);
  o.unsubscribe_url = "https://acme.test/u/{recipient_id}";
  auto p = Make(o);
  OutgoingMessage m = Email("ann@example.com", "rcp_42");
  m.html = "<p>Hello <b>Ann</b> — 50% off</p>\n";
  const SendResult r = SendOneAndWait(*p, m);
  ASSERT_EQ(r.status, SendStatus::kAccepted) << r.error_desc;
  const nlohmann::json msgs = sink.Messages();
  ASSERT_EQ(msgs.size(), 1u);
  const auto& got = msgs[0];
  EXPECT_EQ(got["content_type"], "multipart/alternative");
  ASSERT_EQ(got["parts"].size(), 2u);
  EXPECT_EQ(got["parts"][0]["content_type"], "text/plain");
  EXPECT_EQ(got["parts"][0]["content"], m.text);
  EXPECT_EQ(got["parts"][1]["content_type"], "text/html");
  EXPECT_EQ(got["parts"][1]["charset"], "utf-8");
  EXPECT_EQ(got["parts"][1]["content"], m.html);
  EXPECT_EQ(got["list_unsubscribe"], "<https://acme.test/u/rcp_42>");
  EXPECT_EQ(got["list_unsubscribe_post"], "List-Unsubscribe=One-Click");
  EXPECT_EQ(got["defects"], 0);
}

TEST(SmtpProviderTest, ReplyClasses) {
  SmtpSink sink(
      {"--reject550", "gone@example.com", "--reject451", "busy@example.com"});
  auto p = Make(Options(sink));
  const auto results = SendAndWait(
      *p, {Email("gone@example.com", "rcp_1"),
           Email("busy@example.com", "rcp_2"), Email("ok@example.com", "rcp_3"),
           Email("bad\r\nRCPT TO:<x@y>@example.com", "rcp_4"),
           Email("jürgen@example.com", "rcp_5")});
  ASSERT_EQ(results.size(), 5u);
  EXPECT_EQ(results[0].status, SendStatus::kPermanent);
  EXPECT_EQ(results[0].error_code, "550");
  EXPECT_EQ(results[0].suppress, "bounce");
  EXPECT_NE(results[0].error_desc.find("user unknown"), std::string::npos)
      << results[0].error_desc;
  EXPECT_EQ(results[1].status, SendStatus::kTransient);
  EXPECT_EQ(results[1].error_code, "451");
  EXPECT_EQ(results[1].suppress, "");
  EXPECT_EQ(results[2].status, SendStatus::kAccepted) << results[2].error_desc;
  EXPECT_EQ(results[3].status, SendStatus::kPermanent);
  EXPECT_EQ(results[3].error_code, "invalid_address");
  EXPECT_NE(results[3].error_desc.find("CR or LF"), std::string::npos);
  EXPECT_EQ(results[4].status, SendStatus::kPermanent);
  EXPECT_EQ(results[4].error_code, "invalid_address");
  EXPECT_NE(results[4].error_desc.find("SMTPUTF8"), std::string::npos);
  EXPECT_EQ(sink.Messages().size(), 1u);
}

TEST(SmtpProviderTest, PermanentWithoutBounceUnlessTheMailboxIsUnknown) {
  // Table of replies that never reach the network.
  EXPECT_EQ(SmtpResult(55, 550, "550 5.7.1 rejected as spam", "", {}).suppress,
            "");
  EXPECT_EQ(SmtpResult(55, 550, "550 5.1.1 no such user", "", {}).suppress,
            "bounce");
  EXPECT_EQ(
      SmtpResult(55, 553, "553 mailbox name not allowed", "", {}).suppress,
      "bounce");
  const SendResult r = SmtpResult(55, 554, "554 5.7.0 policy", "", {});
  EXPECT_EQ(r.status, SendStatus::kPermanent);
  EXPECT_EQ(r.error_code, "554");
  EXPECT_EQ(r.suppress, "");
  const SendResult secret =
      SmtpResult(67, 535, "535 bad password hunter2", "", {"hunter2"});
  EXPECT_EQ(secret.status, SendStatus::kUnusable);
  EXPECT_EQ(secret.error_desc.find("hunter2"), std::string::npos);
}

TEST(SmtpProviderTest, ReusesItsConnections) {
  SmtpSink sink({});
  SmtpOptions o = Options(sink);
  o.max_in_flight = 2;
  auto p = Make(o);
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < 50; ++i) {
    batch.push_back(
        Email(absl::StrCat("u", i, "@example.com"), absl::StrCat("rcp_", i)));
  }
  const auto results = SendAndWait(*p, batch);
  ASSERT_EQ(results.size(), 50u);
  for (const SendResult& r : results) {
    ASSERT_EQ(r.status, SendStatus::kAccepted) << r.error_desc;
  }
  EXPECT_LE(sink.connections(), 2);
  EXPECT_EQ(sink.Messages().size(), 50u);
}

TEST(SmtpProviderTest, StartTlsRequiredWithAuth) {
  SmtpSink sink({"--tls", "--require-starttls", "--auth", "user:s3cret"});
  SmtpOptions o = Options(sink);
  o.starttls = StartTls::kRequired;
  o.ca_file = sink.cert();
  o.username = "user";
  o.password = "s3cret";
  auto p = Make(o);
  const SendResult r = SendOneAndWait(*p, Email("ann@example.com", "rcp_1"));
  EXPECT_EQ(r.status, SendStatus::kAccepted) << r.error_desc;
  EXPECT_EQ(sink.Messages().size(), 1u);
}

TEST(SmtpProviderTest, StartTlsRequiredRefusesAServerWithoutIt) {
  SmtpSink sink({});
  SmtpOptions o = Options(sink);
  o.starttls = StartTls::kRequired;
  auto p = Make(o);
  const SendResult r = SendOneAndWait(*p, Email("ann@example.com", "rcp_1"));
  EXPECT_EQ(r.status, SendStatus::kUnusable);
  EXPECT_EQ(r.error_code, "starttls_unavailable");
  EXPECT_EQ(sink.Messages().size(), 0u);
}

TEST(SmtpProviderTest, UntrustedCertificateIsUnusable) {
  SmtpSink sink({"--tls"});
  SmtpOptions o = Options(sink);
  o.starttls = StartTls::kTry;  // offered, so taken, and verified
  auto p = Make(o);
  const SendResult r = SendOneAndWait(*p, Email("ann@example.com", "rcp_1"));
  EXPECT_EQ(r.status, SendStatus::kUnusable) << r.error_desc;
  EXPECT_EQ(sink.Messages().size(), 0u);
}

TEST(SmtpProviderTest, Smtps) {
  SmtpSink sink({"--smtps"});
  SmtpOptions o = Options(sink);
  o.url = sink.url("smtps");
  o.ca_file = sink.cert();
  auto p = Make(o);
  const SendResult r = SendOneAndWait(*p, Email("ann@example.com", "rcp_1"));
  EXPECT_EQ(r.status, SendStatus::kAccepted) << r.error_desc;
  EXPECT_EQ(sink.Messages().size(), 1u);
}

TEST(SmtpProviderTest, RefusedCredentialsMakeTheProviderUnusable) {
  SmtpSink sink({"--auth", "user:s3cret"});
  SmtpOptions o = Options(sink);
  o.username = "user";
  o.password = "wrong-pass";
  auto p = Make(o);
  const SendResult r = SendOneAndWait(*p, Email("ann@example.com", "rcp_1"));
  EXPECT_EQ(r.status, SendStatus::kUnusable);
  EXPECT_EQ(r.error_code, "535");
  EXPECT_EQ(r.error_desc.find("wrong-pass"), std::string::npos);
  EXPECT_EQ(sink.Messages().size(), 0u);
}

// The sink hangs once it has the whole message (aiosmtpd's handle_DATA runs
// after the final "."): it may have queued it, so it is not sent again.
TEST(SmtpProviderTest, NoAnswerToAWholeMessageIsAnUnknownOutcome) {
  SmtpSink sink({"--hang", "slow@example.com"});
  SmtpOptions o = Options(sink);
  o.timeout = absl::Milliseconds(500);
  auto p = Make(o);
  const SendResult r = SendOneAndWait(*p, Email("slow@example.com", "rcp_1"));
  EXPECT_EQ(r.status, SendStatus::kPermanent);
  EXPECT_EQ(r.error_code, "outcome_unknown");
}

// A server that never greets: nothing was handed over, so the timeout is
// transient (the engine retries).
TEST(SmtpProviderTest, AServerThatNeverGreetsTimesOutAsTransient) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 8), 0);  // connections complete; none is answered
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  SmtpOptions o;
  o.name = "mail";
  o.url = absl::StrCat("smtp://127.0.0.1:", ntohs(addr.sin_port));
  o.from = "news@acme.test";
  o.starttls = StartTls::kNever;
  o.timeout = absl::Milliseconds(300);
  auto p = Make(o);
  const SendResult r = SendOneAndWait(*p, Email("ann@example.com", "rcp_1"));
  EXPECT_EQ(r.status, SendStatus::kTransient);
  EXPECT_EQ(r.error_code, "timeout");
  p.reset();
  close(fd);
}

TEST(SmtpProviderTest, StoppingAbortsATransactionOnTheWire) {
  SmtpSink sink({"--hang", "slow@example.com"});
  SmtpOptions o = Options(sink);
  o.timeout = absl::Seconds(60);
  auto p = Make(o);
  std::promise<std::vector<SendResult>> got;
  p->Send(
      {Email("slow@example.com", "rcp_1"), Email("ann@example.com", "rcp_2")},
      [&](std::vector<SendResult> r) { got.set_value(std::move(r)); });
  // Waits until the server holds the message (it answers the other one).
  while (!sink.hanging()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  p.reset();  // the provider stops: nothing waits for the 60 s timeout
  const std::vector<SendResult> r = got.get_future().get();
  ASSERT_EQ(r.size(), 2u);
  // The server holds the whole message: it may deliver it.
  EXPECT_EQ(r[0].status, SendStatus::kPermanent);
  EXPECT_EQ(r[0].error_code, "outcome_unknown");
}

TEST(SmtpProviderTest, ARefusedConnectionIsTransient) {
  SmtpOptions o;
  o.name = "mail";
  o.url = absl::StrCat("smtp://127.0.0.1:", testing::ClosedPort());
  o.from = "news@acme.test";
  o.starttls = StartTls::kNever;
  auto p = Make(o);
  const SendResult r = SendOneAndWait(*p, Email("ann@example.com", "rcp_1"));
  EXPECT_EQ(r.status, SendStatus::kTransient);
  EXPECT_EQ(r.error_code, "connection_failed");
}

TEST(SmtpProviderTest, ABadFromIsRefusedAtCreation) {
  SmtpOptions o;
  o.url = "smtp://127.0.0.1:25";
  o.from = "Acme <no-at-sign>";
  EXPECT_EQ(SmtpProvider::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace campaigns::dispatch
