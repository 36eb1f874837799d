// The smpp provider against a real SMPP peer: tests/peers/smsc (the npm
// package `smpp`, run with /usr/bin/node on 127.0.0.1:0), plus its pure
// parts (SMS encoding and splitting, receipt texts). Each test starts its
// own SMSC and stops it; the provider's timer runs on real time (a thread
// of the test's own).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "server/dispatch/providers/smpp.h"
#include "server/dispatch/timer.h"
#include "tests/dispatch/thread_timer.h"

extern char** environ;

namespace campaigns::dispatch {
namespace {

using nlohmann::json;
using testing::ThreadTimer;

// --- Pure parts -----------------------------------------------------------

TEST(SmppEncodingTest, ShortGsmTextIsOnePartOfSeptets) {
  absl::StatusOr<SmsParts> p = EncodeSms("Hi Ann, 5 EUR = 5€ {ok}");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->data_coding, 0);
  ASSERT_EQ(p->parts.size(), 1u);
  // '€', '{' and '}' take an escape and a septet each.
  EXPECT_EQ(p->parts[0].size(), 23u + 3u);
  EXPECT_EQ(p->parts[0].substr(0, 3), "Hi ");
  EXPECT_NE(p->parts[0].find("\x1B\x65"), std::string::npos);
}

TEST(SmppEncodingTest, LongGsmTextSplitsAt153WithoutSplittingAnEscape) {
  std::string text(152, 'a');
  text += "€";  // septets 153 and 154: goes whole to the second part
  text += std::string(10, 'b');
  absl::StatusOr<SmsParts> p = EncodeSms(text);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->parts.size(), 2u);
  EXPECT_EQ(p->parts[0], std::string(152, 'a'));
  EXPECT_EQ(p->parts[1], "\x1B\x65" + std::string(10, 'b'));
  EXPECT_EQ(EncodeSms(std::string(160, 'x'))->parts.size(), 1u);
  EXPECT_EQ(EncodeSms(std::string(161, 'x'))->parts.size(), 2u);
}

TEST(SmppEncodingTest, NonGsmTextIsUcs2BigEndianInPartsOf67) {
  absl::StatusOr<SmsParts> p = EncodeSms("Привет");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->data_coding, 8);
  ASSERT_EQ(p->parts.size(), 1u);
  EXPECT_EQ(p->parts[0].substr(0, 2), std::string("\x04\x1F", 2));
  std::string long_text;
  for (int i = 0; i < 66; ++i) long_text += "ж";
  long_text += "😀";  // a surrogate pair at units 67-68: not split
  absl::StatusOr<SmsParts> l = EncodeSms(long_text + "жжж");
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->parts.size(), 2u);
  EXPECT_EQ(l->parts[0].size(), 66u * 2);
  EXPECT_EQ(l->parts[1].size(), 4u + 6u);
}

TEST(SmppEncodingTest, RefusesTextsThatAreNotUtf8) {
  EXPECT_EQ(EncodeSms("caf\xC3").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeSms("\xFF").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SmppEncodingTest, ConcatUdhCarriesReferencePartAndCount) {
  EXPECT_EQ(ConcatUdh(0x2A, 2, 3), std::string("\x05\x00\x03\x2A\x03\x02", 6));
}

TEST(SmppReceiptTextTest, ReadsTheFieldsOfACommonReceipt) {
  absl::StatusOr<SmppReceiptText> r = ParseReceiptText(
      "id:0123abc sub:001 dlvrd:001 submit date:2612011200 done "
      "date:2612011201 stat:DELIVRD err:000 text:id:fake stat:UNDELIV");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id, "0123abc");
  EXPECT_EQ(r->stat, "DELIVRD");
  EXPECT_EQ(r->err, "000");
  r = ParseReceiptText("ID:x1 Stat:undeliv Err:034");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stat, "UNDELIV");
  EXPECT_EQ(r->err, "034");
}

TEST(SmppReceiptTextTest, RefusesReceiptsWithoutIdOrStat) {
  EXPECT_FALSE(ParseReceiptText("sub:001 stat:DELIVRD").ok());
  EXPECT_FALSE(ParseReceiptText("id:abc sub:001").ok());
  EXPECT_FALSE(ParseReceiptText("garbage").ok());
  EXPECT_FALSE(ParseReceiptText("").ok());
}

TEST(SmppReceiptTextTest, MapsStatsToStatuses) {
  EXPECT_EQ(**ReceiptStatusOf("DELIVRD"), RecipientStatus::kDelivered);
  for (const char* s : {"UNDELIV", "REJECTD", "EXPIRED", "DELETED"}) {
    EXPECT_EQ(**ReceiptStatusOf(s), RecipientStatus::kFailed) << s;
  }
  EXPECT_FALSE(ReceiptStatusOf("ACCEPTD")->has_value());
  EXPECT_FALSE(ReceiptStatusOf("ENROUTE")->has_value());
  EXPECT_FALSE(ReceiptStatusOf("BOGUS").ok());
  EXPECT_EQ(SmppStatusCode(0x58), "0x00000058");
}

// --- A real peer ----------------------------------------------------------

// Waits (at most 20s, a guard against hangs, not a timing assertion) until
// `pred` holds.
bool Eventually(const std::function<bool()>& pred) {
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// tests/peers/smsc/smsc.js as a child process: control lines on its stdin,
// answers on its stdout, submit_sm records in a file.
class Smsc {
 public:
  explicit Smsc(std::vector<std::string> args) {
    char dir[] = "/tmp/smpp-test-XXXXXX";
    dir_ = mkdtemp(dir);
    records_ = dir_ + "/records.jsonl";
    std::vector<std::string> argv = {
        "/usr/bin/node",
        std::string(CAMPAIGND_SOURCE_DIR) + "/tests/peers/smsc/smsc.js",
        "--records", records_};
    argv.insert(argv.end(), args.begin(), args.end());
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    if (posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), environ) !=
        0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = out[0];
    std::string line = ReadLine();
    port_ = atoi(line.c_str());
  }

  ~Smsc() {
    if (to_ >= 0) close(to_);  // the SMSC exits when its stdin closes
    if (pid_ > 0) {
      int status = 0;
      for (int i = 0; i < 500 && waitpid(pid_, &status, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (i == 499) {
          kill(pid_, SIGKILL);
          waitpid(pid_, &status, 0);
        }
      }
    }
    if (from_ >= 0) close(from_);
    std::remove(records_.c_str());
    rmdir(dir_.c_str());
  }

  int port() const { return port_; }

  // Sends a control line and returns its answer.
  json Command(const std::string& line) {
    const std::string l = line + "\n";
    if (write(to_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) {
      return json();
    }
    std::string answer = ReadLine();
    json j = json::parse(answer, nullptr, false);
    return j;
  }

  json Stats() { return Command("stats")["stats"]; }
  int64_t Stat(const char* key) { return Stats()[key].get<int64_t>(); }

  std::vector<json> Records() {
    std::vector<json> out;
    std::ifstream f(records_);
    std::string line;
    while (std::getline(f, line)) {
      if (!line.empty()) out.push_back(json::parse(line));
    }
    return out;
  }

 private:
  std::string ReadLine() {
    std::string line;
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      pollfd p = {from_, POLLIN, 0};
      if (poll(&p, 1, 20000) <= 0) return "";
      char tmp[4096];
      ssize_t n = read(from_, tmp, sizeof(tmp));
      if (n <= 0) return "";
      buf_.append(tmp, n);
    }
  }

  std::string dir_;
  std::string records_;
  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  int port_ = 0;
  std::string buf_;
};

// The events sink: keeps what the provider hands over and answers with
// `answer`.
class Events {
 public:
  ProviderEventSink Sink() {
    return [this](const std::string& provider, WebhookEvents events,
                  std::function<void(absl::Status)> done) {
      absl::Status answer;
      {
        std::lock_guard<std::mutex> lock(mu_);
        EXPECT_EQ(provider, "smsc");
        if (!events.receipts.empty() && sent_ != nullptr && !sent_->load()) {
          ++early_;
        }
        for (auto& r : events.receipts) receipts_.push_back(r);
        for (auto& m : events.inbound) inbound_.push_back(m);
        answer = answer_;
      }
      done(answer);
    };
  }
  // Counts receipts handed over while `*sent` is false.
  void WatchOrder(std::atomic<bool>* sent) {
    std::lock_guard<std::mutex> lock(mu_);
    sent_ = sent;
  }
  int early() {
    std::lock_guard<std::mutex> lock(mu_);
    return early_;
  }
  void Answer(absl::Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_ = std::move(s);
  }
  std::vector<ReceiptUpdate> receipts() {
    std::lock_guard<std::mutex> lock(mu_);
    return receipts_;
  }
  std::vector<InboundText> inbound() {
    std::lock_guard<std::mutex> lock(mu_);
    return inbound_;
  }

 private:
  std::mutex mu_;
  absl::Status answer_;
  std::vector<ReceiptUpdate> receipts_;
  std::vector<InboundText> inbound_;
  std::atomic<bool>* sent_ = nullptr;
  int early_ = 0;
};

OutgoingMessage Sms(const std::string& to, const std::string& text,
                    const std::string& from = "ACME") {
  OutgoingMessage m;
  m.channel = Channel::kSms;
  m.address = to;
  m.text = text;
  m.sender_id = from;
  return m;
}

class SmppProviderTest : public ::testing::Test {
 protected:
  std::unique_ptr<SmppProvider> Start(
      Smsc& smsc, int window = 10, const std::string& password = "secret",
      absl::Duration enquire = absl::Seconds(30),
      absl::Duration timeout = absl::Seconds(10)) {
    SmppOptions o;
    o.name = "smsc";
    o.host = "127.0.0.1";
    o.port = smsc.port();
    o.system_id = "acme";
    o.password = password;
    o.system_type = "";
    o.window = window;
    o.enquire_link = enquire;
    o.timeout = timeout;
    o.reconnect_min = absl::Milliseconds(20);
    auto p = SmppProvider::Create(std::move(o), &timer_, events_.Sink());
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }

  static std::vector<SendResult> SendAll(SmppProvider& p,
                                         std::vector<OutgoingMessage> batch) {
    std::promise<std::vector<SendResult>> promise;
    std::future<std::vector<SendResult>> f = promise.get_future();
    p.Send(std::move(batch), [&promise](std::vector<SendResult> r) {
      promise.set_value(std::move(r));
    });
    if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      ADD_FAILURE() << "no answer from Send";
      return {};
    }
    return f.get();
  }

  ThreadTimer timer_;
  Events events_;
};

TEST_F(SmppProviderTest, BindsAndSubmitsWithAddressesAndReceiptRequest) {
  Smsc smsc({"--no-dlr"});
  ASSERT_GT(smsc.port(), 0);
  auto p = Start(smsc);
  std::vector<SendResult> r =
      SendAll(*p, {Sms("+15551230001", "Hello Ann"),
                   Sms("+15551230002", "Hi", "+15550009999")});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, SendStatus::kAccepted) << r[0].error_desc;
  EXPECT_EQ(r[0].provider_message_id, "smsc-00000001");
  EXPECT_EQ(r[1].provider_message_id, "smsc-00000002");
  std::vector<json> rec = smsc.Records();
  ASSERT_EQ(rec.size(), 2u);
  EXPECT_EQ(rec[0]["destination_addr"], "15551230001");
  EXPECT_EQ(rec[0]["dest_addr_ton"], 1);
  EXPECT_EQ(rec[0]["dest_addr_npi"], 1);
  EXPECT_EQ(rec[0]["source_addr"], "ACME");
  EXPECT_EQ(rec[0]["source_addr_ton"], 5);
  EXPECT_EQ(rec[0]["source_addr_npi"], 0);
  EXPECT_EQ(rec[0]["registered_delivery"], 1);
  EXPECT_EQ(rec[0]["data_coding"], 0);
  EXPECT_EQ(rec[0]["text"], "Hello Ann");
  EXPECT_EQ(rec[1]["source_addr"], "15550009999");
  EXPECT_EQ(rec[1]["source_addr_ton"], 1);
  EXPECT_EQ(rec[1]["source_addr_npi"], 1);
  EXPECT_EQ(smsc.Stat("binds_ok"), 1);
}

TEST_F(SmppProviderTest, RefusedBindMakesTheProviderUnusable) {
  Smsc smsc({});
  auto p = Start(smsc, 10, "wrong");
  std::vector<SendResult> r = SendAll(*p, {Sms("+15551230001", "Hello")});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, SendStatus::kUnusable);
  EXPECT_EQ(r[0].error_desc, "bind refused: 0x0000000D");
  // It keeps trying (with backoff); nothing was submitted.
  EXPECT_TRUE(Eventually([&] { return smsc.Stat("binds_refused") >= 2; }));
  EXPECT_EQ(smsc.Stat("submits"), 0);
  r = SendAll(*p, {Sms("+15551230001", "Hello")});
  EXPECT_EQ(r[0].status, SendStatus::kUnusable);
}

TEST_F(SmppProviderTest, NeverHasMoreThanTheWindowOutstanding) {
  Smsc smsc({"--no-dlr", "--delay-ms", "3"});
  auto p = Start(smsc, /*window=*/4);
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < 40; ++i) {
    batch.push_back(Sms(absl::StrCat("+1555100", 1000 + i), "x"));
  }
  std::vector<SendResult> r = SendAll(*p, std::move(batch));
  ASSERT_EQ(r.size(), 40u);
  for (const SendResult& s : r) EXPECT_EQ(s.status, SendStatus::kAccepted);
  const int64_t max = smsc.Stat("max_outstanding");
  EXPECT_LE(max, 4);
  EXPECT_GE(max, 2);  // it does pipeline
  EXPECT_LE(p->Stats().max_outstanding, 4);
}

TEST_F(SmppProviderTest, LongTextsGoInPartsWithOneReference) {
  Smsc smsc({});
  auto p = Start(smsc);
  const std::string gsm(200, 'g');
  std::string ucs2;
  for (int i = 0; i < 100; ++i) ucs2 += "ж";
  std::vector<SendResult> r =
      SendAll(*p, {Sms("+15551230001", gsm), Sms("+15551230002", ucs2)});
  ASSERT_EQ(r.size(), 2u);
  ASSERT_EQ(r[0].status, SendStatus::kAccepted);
  ASSERT_EQ(r[1].status, SendStatus::kAccepted);
  EXPECT_EQ(r[0].provider_message_id, "smsc-00000001");  // the first part's
  EXPECT_EQ(r[1].provider_message_id, "smsc-00000003");
  std::vector<json> rec = smsc.Records();
  ASSERT_EQ(rec.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(rec[i]["esm_class"].get<int>() & 0x40, 0x40);
    ASSERT_EQ(rec[i]["udh"].size(), 1u);
  }
  const std::string u0 = rec[0]["udh"][0], u1 = rec[1]["udh"][0];
  // The information element (the SMSC strips the UDH length): IEI 0,
  // length 3, the 8-bit reference, m, n.
  const std::string ref = u0.substr(4, 2);
  EXPECT_EQ(u0, "0003" + ref + "0201");
  EXPECT_EQ(u1, "0003" + ref + "0202");
  EXPECT_EQ(rec[0]["data_coding"], 0);
  EXPECT_EQ(
      rec[0]["text"].get<std::string>() + rec[1]["text"].get<std::string>(),
      gsm);
  EXPECT_EQ(rec[2]["data_coding"], 8);
  EXPECT_EQ(rec[3]["data_coding"], 8);
  EXPECT_NE(rec[2]["udh"][0], rec[0]["udh"][0]);  // another reference
  EXPECT_EQ(
      rec[2]["text"].get<std::string>() + rec[3]["text"].get<std::string>(),
      ucs2);
  // Every part's receipt counts for the message (the first part's id).
  ASSERT_TRUE(Eventually([&] { return events_.receipts().size() >= 4; }));
  std::map<std::string, int> by_id;
  for (const ReceiptUpdate& u : events_.receipts())
    ++by_id[u.provider_message_id];
  EXPECT_EQ(by_id["smsc-00000001"], 2);
  EXPECT_EQ(by_id["smsc-00000003"], 2);
}

TEST_F(SmppProviderTest, ReceiptsAreAnsweredOnlyOnceCommitted) {
  Smsc smsc({});
  auto p = Start(smsc);
  std::vector<SendResult> r = SendAll(*p, {Sms("+15551230001", "Hello")});
  ASSERT_EQ(r[0].status, SendStatus::kAccepted);
  ASSERT_TRUE(Eventually([&] { return events_.receipts().size() == 1; }));
  const ReceiptUpdate u = events_.receipts()[0];
  EXPECT_EQ(u.provider_message_id, r[0].provider_message_id);
  EXPECT_EQ(u.status, RecipientStatus::kDelivered);
  EXPECT_TRUE(Eventually([&] { return smsc.Stat("deliver_resp_ok") == 1; }));

  // Not stored: ESME_RX_T_APPN (a temporary error), so that the SMSC
  // delivers it again.
  events_.Answer(absl::UnavailableError("store down"));
  smsc.Command("dlr_stat UNDELIV");
  r = SendAll(*p, {Sms("+15551230002", "Hello")});
  ASSERT_TRUE(Eventually([&] { return smsc.Stat("deliver_resp_error") == 1; }));
  EXPECT_EQ(smsc.Stat("deliver_resp_last_error"), 0x64);
  const ReceiptUpdate f = events_.receipts()[1];
  EXPECT_EQ(f.status, RecipientStatus::kFailed);
  EXPECT_EQ(f.error_code, "001");
  EXPECT_EQ(p->Stats().receipts, 2);
}

TEST_F(SmppProviderTest, ReceiptsWaitForTheirBatchesResult) {
  // The SMSC sends each receipt right after its submit_sm_resp, long
  // before the batch's last answer: the engine must have the batch's
  // outcomes (and so the message ids) before any of its receipts.
  Smsc smsc({"--delay-ms", "2"});
  auto p = Start(smsc, /*window=*/2);
  std::atomic<bool> sent{false};
  events_.WatchOrder(&sent);
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < 12; ++i) {
    batch.push_back(Sms(absl::StrCat("+1555300", 1000 + i), "x"));
  }
  std::promise<void> done;
  p->Send(std::move(batch), [&](std::vector<SendResult> r) {
    EXPECT_EQ(r.size(), 12u);
    sent = true;
    done.set_value();
  });
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  ASSERT_TRUE(Eventually([&] { return events_.receipts().size() == 12; }));
  EXPECT_EQ(events_.early(), 0);
}

TEST_F(SmppProviderTest, MobileOriginatedStopBecomesAnInboundText) {
  Smsc smsc({});
  auto p = Start(smsc);
  ASSERT_TRUE(Eventually([&] { return smsc.Stat("binds_ok") == 1; }));
  smsc.Command("mo 15551230001 ACME STOP");
  ASSERT_TRUE(Eventually([&] { return events_.inbound().size() == 1; }));
  const InboundText m = events_.inbound()[0];
  EXPECT_EQ(m.channel, Channel::kSms);
  EXPECT_EQ(m.from, "+15551230001");
  EXPECT_EQ(m.to, "ACME");
  EXPECT_EQ(m.text, "STOP");
  EXPECT_TRUE(Eventually([&] { return smsc.Stat("deliver_resp_ok") == 1; }));
}

TEST_F(SmppProviderTest, ThrottlingIsTransientOtherStatusesPermanent) {
  Smsc smsc({"--no-dlr", "--throttle-first", "1"});
  auto p = Start(smsc);
  std::vector<SendResult> r = SendAll(*p, {Sms("+15551230001", "a")});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, SendStatus::kTransient);
  EXPECT_EQ(r[0].error_code, "0x00000058");
  EXPECT_EQ(r[0].retry_after, absl::Seconds(1));
  smsc.Command("status 1 14");
  r = SendAll(*p, {Sms("+15551230001", "a")});
  EXPECT_EQ(r[0].status, SendStatus::kTransient);  // ESME_RMSGQFUL
  smsc.Command("status 1 0B");
  r = SendAll(*p, {Sms("+15551230001", "a")});
  EXPECT_EQ(r[0].status, SendStatus::kPermanent);
  EXPECT_EQ(r[0].error_code, "0x0000000B");
  r = SendAll(*p, {Sms("+15551230001", "a"), Sms("+15551230001", "\xFF")});
  EXPECT_EQ(r[0].status, SendStatus::kAccepted);
  EXPECT_EQ(r[1].status, SendStatus::kPermanent);
  EXPECT_EQ(r[1].error_code, "encoding");
}

// A long text whose first part was accepted and whose second was not: a
// retry would send the first part again, so it fails as partially_sent.
TEST_F(SmppProviderTest, APartlyAcceptedLongTextIsNeverResent) {
  Smsc smsc({"--no-dlr"});
  auto p = Start(smsc, /*window=*/1);
  const std::string three_parts(400, 'g');
  // Throttled before any part was accepted: transient, retried whole.
  smsc.Command("throttle 1");
  std::vector<SendResult> r = SendAll(*p, {Sms("+15551230001", three_parts)});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, SendStatus::kTransient);
  EXPECT_EQ(smsc.Stat("submits"), 1);  // the other parts were not written
  // The connection lost after the first part was accepted.
  smsc.Command("drop_after 1");
  r = SendAll(*p, {Sms("+15551230002", three_parts)});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, SendStatus::kPermanent);
  EXPECT_EQ(r[0].error_code, "partially_sent");
  EXPECT_NE(r[0].error_desc.find("1 of 3 parts accepted"), std::string::npos)
      << r[0].error_desc;
  std::map<std::string, int> parts;
  for (const json& j : smsc.Records()) ++parts[j["destination_addr"]];
  EXPECT_EQ(parts["15551230002"], 1);  // and never again
}

TEST_F(SmppProviderTest, AnUnansweredSubmitEndsTransientlyAfterTheTimeout) {
  Smsc smsc({"--no-dlr", "--delay-ms", "5000"});
  auto p = Start(smsc, 10, "secret", absl::Seconds(30), absl::Seconds(1));
  std::vector<SendResult> r = SendAll(*p, {Sms("+15551230001", "a")});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, SendStatus::kTransient);
  EXPECT_EQ(r[0].error_code, "timeout");
  EXPECT_EQ(p->Stats().timeouts, 1);
}

TEST_F(SmppProviderTest, ReconnectsAfterADropWithoutResendingAcknowledged) {
  Smsc smsc({"--no-dlr", "--drop-after", "5"});
  auto p = Start(smsc, /*window=*/1);
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < 10; ++i) {
    batch.push_back(Sms(absl::StrCat("+1555200", 1000 + i), "x"));
  }
  std::vector<SendResult> r = SendAll(*p, std::move(batch));
  ASSERT_EQ(r.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    if (i == 5) {
      EXPECT_EQ(r[i].status, SendStatus::kTransient);  // unanswered
      EXPECT_EQ(r[i].error_code, "connection_reset");
    } else {
      EXPECT_EQ(r[i].status, SendStatus::kAccepted) << i;
    }
  }
  std::map<std::string, int> per_address;
  for (const json& j : smsc.Records()) ++per_address[j["destination_addr"]];
  // The SMSC received each message once; the one it dropped the
  // connection on was never written again.
  EXPECT_EQ(per_address.size(), 9u);
  for (const auto& [address, n] : per_address) EXPECT_EQ(n, 1) << address;
  EXPECT_EQ(per_address.count("15552001005"), 0u);
  EXPECT_EQ(smsc.Stat("submits"), 10);
  EXPECT_EQ(smsc.Stat("binds_ok"), 2);
  EXPECT_EQ(smsc.Stat("accepted"), 9);
  EXPECT_EQ(p->Stats().drops, 1);
}

TEST_F(SmppProviderTest, BadInputIsCountedNeverFatal) {
  Smsc smsc({"--no-dlr"});
  auto p = Start(smsc);
  ASSERT_TRUE(Eventually([&] { return smsc.Stat("binds_ok") == 1; }));
  smsc.Command("dlr_raw this is not a receipt");
  smsc.Command("dlr_raw id:abc stat:BOGUS err:000");
  ASSERT_TRUE(Eventually([&] { return p->Stats().malformed_receipts == 2; }));
  EXPECT_TRUE(Eventually([&] { return smsc.Stat("deliver_resp_ok") == 2; }));
  EXPECT_TRUE(events_.receipts().empty());
  // A PDU whose command_length is shorter than a header: reconnect.
  smsc.Command("raw 0000000400000000");
  ASSERT_TRUE(Eventually([&] { return smsc.Stat("binds_ok") == 2; }));
  EXPECT_EQ(p->Stats().bad_pdus, 1);
  // A response to nothing we sent.
  smsc.Command("raw 0000001280000004000000000000fffe3100");
  ASSERT_TRUE(Eventually([&] { return p->Stats().unknown_responses == 1; }));
  // A deliver_sm whose body cannot be unpacked: answered, counted.
  smsc.Command("raw 000000110000000500000000000000770a");
  ASSERT_TRUE(Eventually([&] { return p->Stats().bad_pdus == 2; }));
  std::vector<SendResult> r = SendAll(*p, {Sms("+15551230001", "still ok")});
  EXPECT_EQ(r[0].status, SendStatus::kAccepted);
}

TEST_F(SmppProviderTest, KeepsTheLinkAliveAndUnbindsOnDestruction) {
  Smsc smsc({});
  auto p = Start(smsc, 10, "secret", absl::Milliseconds(20));
  ASSERT_TRUE(Eventually([&] { return smsc.Stat("enquire_links") >= 2; }));
  smsc.Command("enquire");
  ASSERT_TRUE(Eventually([&] { return smsc.Stat("enquire_link_resps") == 1; }));
  p.reset();
  EXPECT_TRUE(Eventually([&] { return smsc.Stat("unbinds") == 1; }));
}

}  // namespace
}  // namespace campaigns::dispatch
