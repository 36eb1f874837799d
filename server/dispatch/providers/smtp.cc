// SmtpProvider: the `smtp` provider, one SMTP transaction per recipient.
#include "server/dispatch/providers/smtp.h"

#include <curl/curl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "fmt/format.h"
#include "server/dispatch/providers/adapter_util.h"
#include "server/domain/mutex.h"
#include "server/log/log.h"

namespace campaigns::dispatch {
namespace {

constexpr absl::string_view kCrlf = "\r\n";

// Decodes one UTF-8 character at s[*i] (advancing *i); false (and one byte
// consumed) when it is not valid UTF-8.
bool NextUtf8(absl::string_view s, size_t* i, size_t* len) {
  const unsigned char c = static_cast<unsigned char>(s[*i]);
  size_t n = 0;
  uint32_t min = 0;
  if (c < 0x80) {
    n = 1;
  } else if ((c & 0xE0) == 0xC0) {
    n = 2;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    min = 0x10000;
  } else {
    *len = 1;
    ++*i;
    return false;
  }
  if (*i + n > s.size()) {
    *len = 1;
    ++*i;
    return false;
  }
  uint32_t cp = n == 1 ? c : (c & (0xFF >> (n + 1)));
  for (size_t k = 1; k < n; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[*i + k]);
    if ((cc & 0xC0) != 0x80) {
      *len = 1;
      ++*i;
      return false;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    *len = 1;
    ++*i;
    return false;
  }
  *len = n;
  *i += n;
  return true;
}

// `text` as a sequence of valid UTF-8 characters (U+FFFD for bad bytes;
// CR, LF and other controls but TAB become spaces).
std::vector<std::string> Utf8Chars(absl::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    size_t len = 0;
    if (!NextUtf8(text, &i, &len)) {
      out.push_back("\xEF\xBF\xBD");
      continue;
    }
    std::string ch(text.substr(start, len));
    if (len == 1 &&
        (static_cast<unsigned char>(ch[0]) < 0x20 || ch[0] == 0x7F)) {
      ch = " ";
    }
    out.push_back(std::move(ch));
  }
  return out;
}

// Base64 of `data` in lines of at most 76 characters, each ending CRLF.
std::string Base64Lines(absl::string_view data) {
  const std::string b64 = absl::Base64Escape(data);
  std::string out;
  out.reserve(b64.size() + b64.size() / 76 * 2 + 2);
  for (size_t i = 0; i < b64.size(); i += 76) {
    out.append(b64, i, 76);
    out.append(kCrlf.data(), kCrlf.size());
  }
  return out;
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()),
                 static_cast<int>(bytes)) != 1) {
    // Never expected; uniqueness then rests on the time and a counter.
    static std::atomic<uint64_t> counter{0};
    raw = absl::StrCat(absl::ToUnixNanos(absl::Now()), "-", ++counter);
    return raw;
  }
  return absl::BytesToHexString(raw);
}

bool IsAtext(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::strchr("!#$%&'*+-/=?^_`{|}~ ", c) != nullptr;
}

// The display name as a header phrase: as is when it is atoms, quoted when
// it is other printable ASCII, encoded-words when it is not ASCII.
std::string Phrase(absl::string_view name, size_t used) {
  bool ascii = true;
  bool atoms = true;
  for (char c : name) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x80 || u < 0x20 || u == 0x7F) ascii = false;
    if (!IsAtext(c)) atoms = false;
  }
  if (!ascii || absl::StrContains(name, "=?")) {
    return EncodeHeaderText(name, used);
  }
  if (atoms) return std::string(name);
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace

absl::StatusOr<Mailbox> ParseMailbox(absl::string_view from) {
  from = absl::StripAsciiWhitespace(from);
  Mailbox out;
  const size_t lt = from.rfind('<');
  if (lt != absl::string_view::npos) {
    if (!absl::EndsWith(from, ">")) {
      return absl::InvalidArgumentError(
          "from: expected \"Name <address>\" or an address");
    }
    out.address = std::string(from.substr(lt + 1, from.size() - lt - 2));
    absl::string_view name = absl::StripAsciiWhitespace(from.substr(0, lt));
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
      name = name.substr(1, name.size() - 2);
      out.display_name =
          absl::StrReplaceAll(name, {{"\\\"", "\""}, {"\\\\", "\\"}});
    } else {
      out.display_name = std::string(name);
    }
  } else {
    out.address = std::string(from);
  }
  if (absl::Status s = CheckEmailAddress(out.address); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("from: ", s.message()));
  }
  return out;
}

absl::Status CheckEmailAddress(absl::string_view address) {
  if (address.empty()) return absl::InvalidArgumentError("empty address");
  if (address.size() > 254) {
    return absl::InvalidArgumentError("address longer than 254 characters");
  }
  for (char ch : address) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '\r' || c == '\n') {
      return absl::InvalidArgumentError("address contains CR or LF");
    }
    if (c >= 0x80) {
      return absl::InvalidArgumentError(
          "address is not ASCII (it would need SMTPUTF8, not supported)");
    }
    if (c < 0x21 || c == 0x7F || c == '<' || c == '>' || c == '(' || c == ')' ||
        c == ',' || c == ';' || c == ':' || c == '\\' || c == '"' || c == '[' ||
        c == ']') {
      return absl::InvalidArgumentError(
          "address contains a space, a control character or a character "
          "not allowed in a mailbox");
    }
  }
  const size_t at = address.rfind('@');
  if (at == absl::string_view::npos || at == 0 || at + 1 == address.size() ||
      address.find('@') != at) {
    return absl::InvalidArgumentError(
        "address needs exactly one '@' between a local part and a domain");
  }
  if (at > 64) {
    return absl::InvalidArgumentError("local part longer than 64 characters");
  }
  return absl::OkStatus();
}

std::string EncodeHeaderText(absl::string_view text, size_t used) {
  bool plain = !absl::StrContains(text, "=?");
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7F) plain = false;
  }
  // A header line must stay under 998 octets; longer plain text is
  // encoded, which folds it.
  if (plain && used + text.size() <= 900) return std::string(text);
  // "=?UTF-8?B?" + base64 + "?=" <= 75: 63 characters of base64, i.e. 45
  // bytes of UTF-8 (15 groups of 3), never splitting a character.
  constexpr size_t kMaxBytes = 45;
  std::string out;
  std::string chunk;
  auto flush = [&] {
    if (chunk.empty()) return;
    if (!out.empty()) absl::StrAppend(&out, kCrlf, " ");
    absl::StrAppend(&out, "=?UTF-8?B?", absl::Base64Escape(chunk), "?=");
    chunk.clear();
  };
  for (const std::string& ch : Utf8Chars(text)) {
    if (chunk.size() + ch.size() > kMaxBytes) flush();
    chunk += ch;
  }
  flush();
  return out;
}

std::string BuildSmtpMessage(const OutgoingMessage& m, const Mailbox& from,
                             const std::string& message_id,
                             const std::string& unsubscribe_url,
                             absl::Time date) {
  std::string out;
  out.reserve(512 + m.text.size() * 4 / 3 + m.html.size() * 4 / 3);
  auto header = [&out](absl::string_view name, absl::string_view value) {
    absl::StrAppend(&out, name, ": ", value, kCrlf);
  };
  if (from.display_name.empty()) {
    header("From", from.address);
  } else {
    header("From",
           absl::StrCat(Phrase(from.display_name, 6), " <", from.address, ">"));
  }
  header("To", m.address);
  header("Subject", EncodeHeaderText(m.subject, 9));
  header("Date", absl::FormatTime("%a, %d %b %Y %H:%M:%S +0000", date,
                                  absl::UTCTimeZone()));
  header("Message-ID", message_id);
  header("MIME-Version", "1.0");
  if (!unsubscribe_url.empty()) {
    // A URL with characters that could end the angle brackets or the
    // header is percent-escaped where it stands.
    std::string url = absl::StrReplaceAll(
        absl::StrReplaceAll(unsubscribe_url,
                            {{"{recipient_id}", m.recipient_id}}),
        {{"\r", "%0D"}, {"\n", "%0A"}, {">", "%3E"}, {" ", "%20"}});
    header("List-Unsubscribe", absl::StrCat("<", url, ">"));
    header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click");
  }
  constexpr absl::string_view kText = "text/plain; charset=UTF-8";
  constexpr absl::string_view kHtml = "text/html; charset=UTF-8";
  if (m.html.empty()) {
    header("Content-Type", kText);
    header("Content-Transfer-Encoding", "base64");
    absl::StrAppend(&out, kCrlf, Base64Lines(m.text));
    return out;
  }
  // Base64 lines and the headers never contain "=_", so the boundary
  // cannot occur in the parts.
  const std::string boundary = absl::StrCat("=_campaignd_", RandomHex(12));
  header("Content-Type",
         absl::StrCat("multipart/alternative; boundary=\"", boundary, "\""));
  absl::StrAppend(&out, kCrlf);
  for (const auto& [type, body] :
       {std::pair<absl::string_view, const std::string*>{kText, &m.text},
        {kHtml, &m.html}}) {
    absl::StrAppend(&out, "--", boundary, kCrlf, "Content-Type: ", type, kCrlf,
                    "Content-Transfer-Encoding: base64", kCrlf, kCrlf,
                    Base64Lines(*body));
  }
  absl::StrAppend(&out, "--", boundary, "--", kCrlf);
  return out;
}

SendResult SmtpResult(int curl_code, int smtp_code,
                      absl::string_view reply_text,
                      absl::string_view curl_error,
                      const std::vector<absl::string_view>& secrets) {
  SendResult out;
  if (curl_code == CURLE_OK) {
    out.status = SendStatus::kAccepted;
    return out;
  }
  const std::string text = Clip(
      Redact(std::string(absl::StripAsciiWhitespace(reply_text)), secrets));
  const std::string code = smtp_code > 0 ? std::to_string(smtp_code) : "";
  const std::string error = Redact(
      std::string(curl_error.empty()
                      ? curl_easy_strerror(static_cast<CURLcode>(curl_code))
                      : curl_error),
      secrets);
  if (curl_code == CURLE_LOGIN_DENIED || smtp_code == 535 || smtp_code == 530 ||
      smtp_code == 534) {
    out.status = SendStatus::kUnusable;
    out.error_code = code.empty() ? "auth_failed" : code;
    out.error_desc = absl::StrCat("the SMTP server refused the credentials: ",
                                  text.empty() ? error : text);
    return out;
  }
  if (curl_code == CURLE_USE_SSL_FAILED) {
    out.status = SendStatus::kUnusable;
    out.error_code = "starttls_unavailable";
    out.error_desc =
        "the SMTP server does not offer STARTTLS and starttls = \"required\"";
    return out;
  }
  if (curl_code == CURLE_PEER_FAILED_VERIFICATION ||
      curl_code == CURLE_SSL_CACERT_BADFILE) {
    out.status = SendStatus::kUnusable;
    out.error_code = "tls_verify_failed";
    out.error_desc = absl::StrCat(
        "the SMTP server's TLS certificate does not verify: ", error);
    return out;
  }
  if (smtp_code >= 400 && smtp_code < 600) {
    out.error_code = code;
    out.error_desc =
        text.empty() ? absl::StrCat("SMTP ", code, ": ", error) : text;
    if (smtp_code < 500) {
      out.status = SendStatus::kTransient;
      return out;
    }
    out.status = SendStatus::kPermanent;
    // The enhanced status code (RFC 3463) after the reply code, if any.
    absl::string_view rest = text;
    if (absl::StartsWith(rest, code)) rest.remove_prefix(code.size());
    rest = absl::StripLeadingAsciiWhitespace(absl::StripPrefix(rest, "-"));
    const bool enhanced = rest.size() > 2 && rest[0] == '5' && rest[1] == '.';
    const bool no_mailbox = absl::StartsWith(rest, "5.1.");
    if (no_mailbox || (!enhanced && (smtp_code == 550 || smtp_code == 551 ||
                                     smtp_code == 553))) {
      out.suppress = "bounce";
    }
    return out;
  }
  out.status = SendStatus::kTransient;
  out.error_code =
      curl_code == CURLE_OPERATION_TIMEDOUT ? "timeout" : "connection_failed";
  out.error_desc = error;
  return out;
}

// The I/O side: up to max_in_flight connection threads, each with one
// libcurl easy handle whose connection stays open from message to message.
//
// Not a curl multi on one thread, as HttpClient is: libcurl's SMTP "done"
// phase (sending the final "." and waiting for the 250) blocks inside
// curl_multi_perform even in the multi interface (curl issue 8555, its
// TODO "More non-blocking"), so one slow or hung server would stall every
// transaction on that thread. A thread per connection confines the wait to
// its own connection; threads are started when work needs them and wait
// on a condition variable when idle.
//
// Thread-safe: Enqueue from any thread.
class SmtpProvider::Engine {
 public:
  // One message's transaction.
  struct Job {
    // One Send's results, filled in as its messages finish.
    struct Batch {
      Mutex mu;
      std::vector<SendResult> results;
      size_t left = 0;
      SendDone done;
    };
    std::shared_ptr<Batch> batch;
    size_t index = 0;
    OutgoingMessage message;
    std::string message_id;  // with angle brackets
    std::string data;        // the whole message
    size_t offset = 0;       // how much of `data` libcurl has read
    std::string reply;       // the reply being read (multi-line)
    // The last complete 4xx or 5xx reply: what the transaction failed on
    // (libcurl may close the connection after it, and QUIT's 221 follows).
    std::string error_reply;
    const std::atomic<bool>* stopping = nullptr;

    static size_t OnRead(char* buf, size_t size, size_t n, void* self) {
      auto* j = static_cast<Job*>(self);
      const size_t len = std::min(size * n, j->data.size() - j->offset);
      std::memcpy(buf, j->data.data() + j->offset, len);
      j->offset += len;
      return len;
    }

    // libcurl hands each server reply line to the header callback (SMTP
    // is a "pingpong" protocol): keeps the last error reply.
    static size_t OnReply(char* data, size_t size, size_t n, void* self) {
      auto* j = static_cast<Job*>(self);
      absl::string_view line(data, size * n);
      line = absl::StripTrailingAsciiWhitespace(line);
      if (j->reply.size() < 1024) {
        if (!j->reply.empty()) j->reply.push_back(' ');
        j->reply.append(line.data(), std::min<size_t>(line.size(), 512));
      }
      // "250-..." continues a reply; "250 ..." (or "250") ends it.
      if (line.size() <= 3 || line[3] != '-') {
        if (!j->reply.empty() && (j->reply[0] == '4' || j->reply[0] == '5')) {
          j->error_reply = std::move(j->reply);
        }
        j->reply.clear();
      }
      return size * n;
    }

    // Aborts the transaction when the provider stops.
    static int OnProgress(void* self, curl_off_t, curl_off_t, curl_off_t,
                          curl_off_t) {
      return static_cast<Job*>(self)->stopping->load() ? 1 : 0;
    }
  };

  // The sockets of one connection thread's handle, so that stopping can
  // shut them down: libcurl's blocking waits (the reply to the final ".",
  // QUIT) look at no progress callback, but a shut-down socket ends them.
  struct Sockets {
    Mutex mu;
    std::set<curl_socket_t> fds ABSL_GUARDED_BY(mu);
    bool stopping ABSL_GUARDED_BY(mu) = false;

    static curl_socket_t OnOpen(void* self, curlsocktype /*purpose*/,
                                curl_sockaddr* a) {
      auto* s = static_cast<Sockets*>(self);
      MutexLock lock(&s->mu);
      if (s->stopping) return CURL_SOCKET_BAD;
      const curl_socket_t fd =
          socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
      if (fd != CURL_SOCKET_BAD) s->fds.insert(fd);
      return fd;
    }
    static int OnClose(void* self, curl_socket_t fd) {
      auto* s = static_cast<Sockets*>(self);
      MutexLock lock(&s->mu);
      s->fds.erase(fd);
      return close(fd);
    }
    void ShutDown() {
      MutexLock lock(&mu);
      stopping = true;
      for (curl_socket_t fd : fds) shutdown(fd, SHUT_RDWR);
    }
  };

  Engine(SmtpOptions options, Mailbox from)
      : options_(std::move(options)), from_(std::move(from)) {
    url_ = options_.url;
    // The URL's path is the EHLO domain: without one, the sender's.
    const size_t scheme = url_.find("://");
    if (url_.find('/', scheme == std::string::npos ? 0 : scheme + 3) ==
        std::string::npos) {
      absl::StrAppend(&url_, "/", Domain());
    }
    mail_from_ = absl::StrCat("<", from_.address, ">");
  }

  ~Engine() {
    std::vector<std::thread> threads;
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      stopping_flag_ = true;
      threads.swap(threads_);
      for (auto& sockets : sockets_) sockets->ShutDown();
    }
    work_.SignalAll();
    for (std::thread& t : threads) t.join();
    // Whatever no thread took completes as transient, once.
    std::deque<std::unique_ptr<Job>> abandoned;
    {
      MutexLock lock(&mu_);
      abandoned.swap(queued_);
    }
    for (auto& j : abandoned) Complete(std::move(j), ShuttingDown());
  }

  static absl::Status GlobalInit() {
    static std::once_flag once;
    static CURLcode global = CURLE_OK;
    std::call_once(once,
                   [] { global = curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (global != CURLE_OK) {
      return absl::InternalError(
          absl::StrCat("libcurl: ", curl_easy_strerror(global)));
    }
    return absl::OkStatus();
  }

  std::string Domain() const {
    return from_.address.substr(from_.address.rfind('@') + 1);
  }

  const SmtpOptions& options() const { return options_; }

  void Enqueue(std::vector<std::unique_ptr<Job>> jobs) {
    {
      ReleasableMutexLock lock(&mu_);
      if (stopping_) {
        // Stopped: no thread would take them.
        lock.Unlock();
        for (auto& j : jobs) Complete(std::move(j), ShuttingDown());
        return;
      }
      for (auto& j : jobs) queued_.push_back(std::move(j));
      // A thread more for each message no idle thread will take, up to
      // max_in_flight threads (= connections).
      const size_t max =
          static_cast<size_t>(std::max(1, options_.max_in_flight));
      while (!stopping_ && threads_.size() < max && idle_ < queued_.size()) {
        ++idle_;  // counted idle until it takes its first job
        sockets_.push_back(std::make_unique<Sockets>());
        threads_.emplace_back(
            [this, n = threads_.size(), sockets = sockets_.back().get()] {
              Run(n, sockets);
            });
      }
    }
    work_.SignalAll();
  }

  static void Complete(std::unique_ptr<Job> j, SendResult r) {
    std::shared_ptr<Job::Batch> b = std::move(j->batch);
    const size_t index = j->index;
    j.reset();
    bool last = false;
    {
      MutexLock lock(&b->mu);
      b->results[index] = std::move(r);
      last = --b->left == 0;
    }
    if (last) b->done(std::move(b->results));
  }

 private:
  static SendResult ShuttingDown() {
    SendResult r;
    r.status = SendStatus::kTransient;
    r.error_code = "shutting_down";
    r.error_desc = "the SMTP provider is shutting down";
    return r;
  }

  // One connection's thread: takes jobs until the provider stops.
  void Run(size_t n, Sockets* sockets) {
    pthread_setname_np(pthread_self(), absl::StrCat("smtp-", n).c_str());
    CURL* easy = NewEasy(sockets);
    for (;;) {
      std::unique_ptr<Job> j;
      {
        MutexLock lock(&mu_);
        while (!stopping_ && queued_.empty()) work_.Wait(&mu_);
        if (stopping_) break;
        j = std::move(queued_.front());
        queued_.pop_front();
        --idle_;
      }
      SendResult r = Transact(easy, j.get());
      {
        MutexLock lock(&mu_);
        ++idle_;
      }
      Complete(std::move(j), std::move(r));
    }
    // Closing the connection sends QUIT and waits (at most `timeout`).
    if (easy != nullptr) curl_easy_cleanup(easy);
  }

  // A handle with everything that is the same for every message.
  CURL* NewEasy(Sockets* sockets) {
    CURL* easy = curl_easy_init();
    if (easy == nullptr) return nullptr;
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &Sockets::OnOpen);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, sockets);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, &Sockets::OnClose);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, sockets);
    const long timeout_ms = static_cast<long>(
        std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.timeout)));
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy, CURLOPT_MAIL_FROM, mail_from_.c_str());
    curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, &Job::OnRead);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Job::OnReply);
    curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &Job::OnProgress);
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(easy, CURLOPT_USE_SSL,
                     options_.starttls == StartTls::kRequired ? CURLUSESSL_ALL
                     : options_.starttls == StartTls::kTry    ? CURLUSESSL_TRY
                                                           : CURLUSESSL_NONE);
    if (!options_.ca_file.empty()) {
      curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str());
    }
    if (!options_.username.empty()) {
      curl_easy_setopt(easy, CURLOPT_USERNAME, options_.username.c_str());
      curl_easy_setopt(easy, CURLOPT_PASSWORD, options_.password.c_str());
      // AUTH PLAIN with its initial response: one round trip fewer.
      curl_easy_setopt(easy, CURLOPT_SASL_IR, 1L);
    }
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    // Also bounds each wait for a reply outside a transfer (QUIT).
    curl_easy_setopt(easy, CURLOPT_SERVER_RESPONSE_TIMEOUT,
                     std::max<long>(1, timeout_ms / 1000));
    curl_easy_setopt(easy, CURLOPT_FORBID_REUSE,
                     options_.forbid_reuse ? 1L : 0L);
    return easy;
  }

  // One SMTP transaction for `j` on `easy` (its connection reused when
  // still open). Blocks this thread for at most `timeout`.
  SendResult Transact(CURL* easy, Job* j) {
    if (easy == nullptr) {
      SendResult r;
      r.status = SendStatus::kTransient;
      r.error_code = "connection_failed";
      r.error_desc = "libcurl: no easy handle";
      return r;
    }
    j->message_id =
        absl::StrCat("<", RandomHex(16), ".", absl::ToUnixSeconds(absl::Now()),
                     "@", Domain(), ">");
    j->data = BuildSmtpMessage(j->message, from_, j->message_id,
                               options_.unsubscribe_url, absl::Now());
    j->stopping = &stopping_flag_;
    j->reply.clear();
    j->error_reply.clear();
    const std::string rcpt = absl::StrCat("<", j->message.address, ">");
    curl_slist* rcpts = curl_slist_append(nullptr, rcpt.c_str());
    char error[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, rcpts);
    curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE,
                     static_cast<curl_off_t>(j->data.size()));
    curl_easy_setopt(easy, CURLOPT_READDATA, j);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, j);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
    const CURLcode code = curl_easy_perform(easy);
    long smtp_code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &smtp_code);
    curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, nullptr);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, nullptr);
    curl_slist_free_all(rcpts);
    // The whole message went out but no reply to it came (a timeout, or
    // the provider stopping): the server may have queued it. Not sent
    // again silently (RFC 1047's duplicate): failed as outcome_unknown,
    // which RetryFailed sends on request.
    if (code != CURLE_OK && j->offset == j->data.size() &&
        j->error_reply.empty()) {
      SendResult r;
      r.status = SendStatus::kPermanent;
      r.error_code = "outcome_unknown";
      r.error_desc = absl::StrCat(
          "the SMTP server got the whole message but did not answer it (",
          code == CURLE_OPERATION_TIMEDOUT ? "timeout" : "stopped",
          "); it may have been delivered, so it is not sent again");
      logging::Warn(fmt::format("smtp provider {}: message {} to {}: {}",
                                options_.name, j->message.idempotency_key,
                                logging::MaskAddress(j->message.address),
                                r.error_desc));
      return r;
    }
    // Stopping aborts (the progress callback) or shuts the socket down.
    if (code == CURLE_ABORTED_BY_CALLBACK ||
        (code != CURLE_OK && stopping_flag_.load())) {
      return ShuttingDown();
    }
    // The error reply is the one the code came from only when it starts
    // with that code.
    const std::string code_text = std::to_string(smtp_code);
    const std::string reply =
        absl::StartsWith(j->error_reply, code_text) ? j->error_reply : "";
    // Only the password is secret: redacting the username too would
    // mangle replies such as "550 user unknown" for a username "user".
    SendResult r = SmtpResult(code, static_cast<int>(smtp_code), reply, error,
                              {options_.password});
    if (r.status == SendStatus::kAccepted) {
      r.provider_message_id = j->message_id;
    } else {
      logging::Warn(fmt::format(
          "smtp provider {}: message {} to {} not sent ({}): {} [libcurl: {}]",
          options_.name, j->message.idempotency_key,
          logging::MaskAddress(j->message.address), r.error_code,
          absl::StrReplaceAll(
              r.error_desc,
              {{j->message.address, logging::MaskAddress(j->message.address)}}),
          Redact(error[0] != '\0' ? std::string(error)
                                  : std::string(curl_easy_strerror(code)),
                 {options_.password})));
    }
    return r;
  }

  const SmtpOptions options_;
  const Mailbox from_;
  std::string url_;
  std::string mail_from_;
  // Set once, when the provider stops: aborts transactions on the wire.
  std::atomic<bool> stopping_flag_{false};

  Mutex mu_;
  CondVar work_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::unique_ptr<Job>> queued_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  // One per thread (outlives it: destroyed with the engine).
  std::vector<std::unique_ptr<Sockets>> sockets_ ABSL_GUARDED_BY(mu_);
  // Threads waiting for a job (or about to).
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::StatusOr<std::unique_ptr<SmtpProvider>> SmtpProvider::Create(
    SmtpOptions options) {
  absl::StatusOr<Mailbox> from = ParseMailbox(options.from);
  if (!from.ok()) return from.status();
  if (absl::Status s = Engine::GlobalInit(); !s.ok()) return s;
  auto engine = std::make_unique<Engine>(std::move(options), *std::move(from));
  return std::unique_ptr<SmtpProvider>(new SmtpProvider(std::move(engine)));
}

SmtpProvider::SmtpProvider(std::unique_ptr<Engine> engine)
    : engine_(std::move(engine)) {}

SmtpProvider::~SmtpProvider() = default;

int SmtpProvider::MaxInFlight() const {
  return engine_->options().max_in_flight;
}

void SmtpProvider::Send(std::vector<OutgoingMessage> batch, SendDone done) {
  if (batch.empty()) {
    done({});
    return;
  }
  auto b = std::make_shared<Engine::Job::Batch>();
  b->results.resize(batch.size());
  b->left = batch.size();
  b->done = std::move(done);
  std::vector<std::unique_ptr<Engine::Job>> jobs;
  std::vector<std::pair<std::unique_ptr<Engine::Job>, SendResult>> refused;
  for (size_t i = 0; i < batch.size(); ++i) {
    auto j = std::make_unique<Engine::Job>();
    j->batch = b;
    j->index = i;
    j->message = std::move(batch[i]);
    if (absl::Status s = CheckEmailAddress(j->message.address); !s.ok()) {
      SendResult r;
      r.status = SendStatus::kPermanent;
      r.error_code = "invalid_address";
      r.error_desc = absl::StrCat("cannot send by SMTP: ", s.message());
      refused.emplace_back(std::move(j), std::move(r));
      continue;
    }
    jobs.push_back(std::move(j));
  }
  if (!jobs.empty()) engine_->Enqueue(std::move(jobs));
  for (auto& [j, r] : refused) Engine::Complete(std::move(j), std::move(r));
}

}  // namespace campaigns::dispatch
