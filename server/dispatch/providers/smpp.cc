// The `smpp` provider: an SMPP 3.4 transceiver session to an SMSC.
#include "server/dispatch/providers/smpp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fmt/format.h"
#include "server/domain/mutex.h"
#include "server/domain/sms_segments.h"
#include "server/log/log.h"

// libsmpp34's headers need these first, and smpp34_structs.h before
// smpp34_params.h.
// clang-format off
extern "C" {
#include <stdint.h>
#include <stdio.h>
#include <smpp34.h>
#include <smpp34_structs.h>
#include <smpp34_params.h>
}
// clang-format on

namespace campaigns::dispatch {
namespace {

constexpr uint32_t kHeaderSize = 16;
// No PDU we take is larger (a deliver_sm carries at most 254 bytes of
// short_message plus TLVs; message_payload up to 64K is not taken).
constexpr uint32_t kMaxPduSize = 64 * 1024;
constexpr uint8_t kEsmUdhi = 0x40;
constexpr uint8_t kEsmReceipt = 0x04;

// libsmpp34 reports errors through process-wide globals (smpp34_errno,
// smpp34_strerror): every call into it takes this lock.
Mutex& LibMutex() {
  static Mutex* mu = new Mutex;
  return *mu;
}

uint32_t ReadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Copies `s` into a C_OCTET field of `size` bytes (NUL included).
bool CopyCOctet(absl::string_view s, uint8_t* field, size_t size) {
  if (s.size() + 1 > size) return false;
  memcpy(field, s.data(), s.size());
  field[s.size()] = 0;
  return true;
}

std::string COctet(const uint8_t* field, size_t size) {
  const void* nul = memchr(field, 0, size);
  return std::string(reinterpret_cast<const char*>(field),
                     nul ? static_cast<const uint8_t*>(nul) - field : size);
}

// The fields libsmpp34's last error flags, without their values (they can
// be a password or a phone number): "sequence_number (Invalid value)".
// Its text is "[name:value(OK)][name:value(why)]..."; LibMutex held.
std::string LibError() {
  std::string out;
  absl::string_view e(smpp34_strerror,
                      strnlen(smpp34_strerror, sizeof(smpp34_strerror)));
  size_t pos = 0;
  while ((pos = e.find('[', pos)) != absl::string_view::npos) {
    const size_t end = e.find(']', pos);
    if (end == absl::string_view::npos) break;
    absl::string_view field = e.substr(pos + 1, end - pos - 1);
    pos = end;
    const size_t colon = field.find(':');
    const size_t paren = field.rfind('(');
    if (colon == absl::string_view::npos || paren == absl::string_view::npos ||
        paren < colon) {
      continue;
    }
    absl::string_view why = field.substr(paren + 1);
    if (!why.empty() && why.back() == ')') why.remove_suffix(1);
    if (why == "OK") continue;
    absl::StrAppend(&out, out.empty() ? "" : ", ", field.substr(0, colon), " (",
                    why.substr(0, 40), ")");
  }
  return out.empty() ? "no field named" : out;
}

// Packs `pdu` (a libsmpp34 struct of `type`); "" when it cannot.
template <typename T>
std::string Pack(uint32_t type, T* pdu) {
  uint8_t buf[2048];
  int len = 0;
  MutexLock lock(&LibMutex());
  if (smpp34_pack(type, buf, sizeof(buf), &len, pdu) != 0) {
    logging::Error(
        fmt::format("smpp: cannot pack PDU 0x{:08X}: {}", type, LibError()));
    return "";
  }
  return std::string(reinterpret_cast<char*>(buf), len);
}

std::string HeaderOnly(uint32_t command_id, uint32_t status, uint32_t seq) {
  std::string out(kHeaderSize, '\0');
  const uint32_t v[4] = {htonl(kHeaderSize), htonl(command_id), htonl(status),
                         htonl(seq)};
  memcpy(out.data(), v, sizeof(v));
  return out;
}

// --- GSM 03.38 ---------------------------------------------------------

// The default alphabet, by septet (0x1B is the escape to the extension).
constexpr char32_t kGsmDefault[128] = {
    U'@', U'£',  U'$', U'¥',   U'è', U'é', U'ù', U'ì', U'ò', U'Ç', U'\n', U'Ø',
    U'ø', U'\r', U'Å', U'å',   U'Δ', U'_', U'Φ', U'Γ', U'Λ', U'Ω', U'Π',  U'Ψ',
    U'Σ', U'Θ',  U'Ξ', 0xFFFF, U'Æ', U'æ', U'ß', U'É', U' ', U'!', U'"',  U'#',
    U'¤', U'%',  U'&', U'\'',  U'(', U')', U'*', U'+', U',', U'-', U'.',  U'/',
    U'0', U'1',  U'2', U'3',   U'4', U'5', U'6', U'7', U'8', U'9', U':',  U';',
    U'<', U'=',  U'>', U'?',   U'¡', U'A', U'B', U'C', U'D', U'E', U'F',  U'G',
    U'H', U'I',  U'J', U'K',   U'L', U'M', U'N', U'O', U'P', U'Q', U'R',  U'S',
    U'T', U'U',  U'V', U'W',   U'X', U'Y', U'Z', U'Ä', U'Ö', U'Ñ', U'Ü',  U'§',
    U'¿', U'a',  U'b', U'c',   U'd', U'e', U'f', U'g', U'h', U'i', U'j',  U'k',
    U'l', U'm',  U'n', U'o',   U'p', U'q', U'r', U's', U't', U'u', U'v',  U'w',
    U'x', U'y',  U'z', U'ä',   U'ö', U'ñ', U'ü', U'à',
};

// The septets of `c` ("" when it is not in GSM-7).
std::string GsmSeptets(char32_t c) {
  switch (c) {
    case U'\f':
      return "\x1B\x0A";
    case U'^':
      return "\x1B\x14";
    case U'{':
      return "\x1B\x28";
    case U'}':
      return "\x1B\x29";
    case U'\\':
      return "\x1B\x2F";
    case U'[':
      return "\x1B\x3C";
    case U'~':
      return "\x1B\x3D";
    case U']':
      return "\x1B\x3E";
    case U'|':
      return "\x1B\x40";
    case U'€':
      return "\x1B\x65";
    default:
      break;
  }
  for (int i = 0; i < 128; ++i) {
    if (kGsmDefault[i] == c) return std::string(1, static_cast<char>(i));
  }
  return "";
}

// Strict UTF-8 decoding; false on any invalid sequence.
bool DecodeUtf8(absl::string_view text, std::vector<char32_t>* out) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char b = static_cast<unsigned char>(text[i]);
    const int len = b < 0x80         ? 1
                    : (b >> 5) == 6  ? 2
                    : (b >> 4) == 14 ? 3
                    : (b >> 3) == 30 ? 4
                                     : 0;
    if (len == 0 || i + len > text.size()) return false;
    char32_t c = len == 1   ? b
                 : len == 2 ? (b & 0x1F)
                 : len == 3 ? (b & 0x0F)
                            : (b & 0x07);
    for (int k = 1; k < len; ++k) {
      const unsigned char cont = static_cast<unsigned char>(text[i + k]);
      if ((cont >> 6) != 2) return false;
      c = (c << 6) | (cont & 0x3F);
    }
    const char32_t min = len == 1   ? 0
                         : len == 2 ? 0x80
                         : len == 3 ? 0x800
                                    : 0x10000;
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
    out->push_back(c);
    i += len;
  }
  return true;
}

// Splits `units` (one string per character) into parts of at most `single`
// bytes when all fit, else of at most `part` bytes, never splitting one.
std::vector<std::string> SplitUnits(const std::vector<std::string>& units,
                                    size_t single, size_t part) {
  size_t total = 0;
  for (const std::string& u : units) total += u.size();
  std::vector<std::string> out(1);
  if (total <= single) {
    for (const std::string& u : units) out.back() += u;
    return out;
  }
  for (const std::string& u : units) {
    if (out.back().size() + u.size() > part) out.emplace_back();
    out.back() += u;
  }
  return out;
}

}  // namespace

absl::StatusOr<SmsParts> EncodeSms(absl::string_view text) {
  std::vector<char32_t> chars;
  if (!DecodeUtf8(text, &chars)) {
    return absl::InvalidArgumentError("text is not valid UTF-8");
  }
  SmsParts out;
  std::vector<std::string> units;
  units.reserve(chars.size());
  if (CountSmsSegments(text).encoding == SmsEncoding::kGsm7) {
    out.data_coding = 0;
    for (char32_t c : chars) {
      std::string s = GsmSeptets(c);
      if (s.empty()) {
        return absl::InvalidArgumentError("text is not GSM-7 after all");
      }
      units.push_back(std::move(s));
    }
    out.parts = SplitUnits(units, 160, 153);
  } else {
    out.data_coding = 8;
    for (char32_t c : chars) {
      std::string u;
      auto put = [&u](uint32_t v) {
        u.push_back(static_cast<char>(v >> 8));
        u.push_back(static_cast<char>(v & 0xFF));
      };
      if (c > 0xFFFF) {
        const uint32_t v = c - 0x10000;
        put(0xD800 + (v >> 10));
        put(0xDC00 + (v & 0x3FF));
      } else {
        put(c);
      }
      units.push_back(std::move(u));
    }
    out.parts = SplitUnits(units, 140, 134);
  }
  if (out.parts.size() > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "text takes ", out.parts.size(), " SMS parts (at most 255)"));
  }
  return out;
}

std::string ConcatUdh(uint8_t ref, int n, int m) {
  return std::string({0x05, 0x00, 0x03, static_cast<char>(ref),
                      static_cast<char>(m), static_cast<char>(n)});
}

absl::StatusOr<SmppReceiptText> ParseReceiptText(absl::string_view text) {
  // Keys are matched in a lower-case copy up to "text:" (free text after).
  std::string lower = absl::AsciiStrToLower(text);
  size_t end = lower.find("text:");
  if (end == std::string::npos) end = lower.size();
  auto field = [&](absl::string_view key) -> std::optional<std::string> {
    size_t pos = 0;
    const std::string k = absl::StrCat(key, ":");
    while ((pos = lower.find(k, pos)) != std::string::npos && pos < end) {
      if (pos == 0 || lower[pos - 1] == ' ') {
        size_t start = pos + k.size();
        size_t stop = text.find(' ', start);
        if (stop == absl::string_view::npos || stop > end) {
          stop = std::min(end, text.size());
        }
        return std::string(
            absl::StripAsciiWhitespace(text.substr(start, stop - start)));
      }
      pos += k.size();
    }
    return std::nullopt;
  };
  SmppReceiptText out;
  std::optional<std::string> id = field("id");
  std::optional<std::string> stat = field("stat");
  if (!id || id->empty()) {
    return absl::InvalidArgumentError("receipt without id:");
  }
  if (!stat || stat->empty()) {
    return absl::InvalidArgumentError("receipt without stat:");
  }
  out.id = *id;
  out.stat = absl::AsciiStrToUpper(*stat);
  out.err = field("err").value_or("");
  return out;
}

absl::StatusOr<std::optional<RecipientStatus>> ReceiptStatusOf(
    absl::string_view stat) {
  if (stat == "DELIVRD") return RecipientStatus::kDelivered;
  if (stat == "UNDELIV" || stat == "REJECTD" || stat == "EXPIRED" ||
      stat == "DELETED") {
    return RecipientStatus::kFailed;
  }
  if (stat == "ACCEPTD" || stat == "ENROUTE" || stat == "UNKNOWN") {
    return std::optional<RecipientStatus>();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown receipt stat \"", stat.substr(0, 20), "\""));
}

std::string SmppStatusCode(uint32_t status) {
  return absl::StrFormat("0x%08X", status);
}

namespace {

// message_state (SMPP 3.4 5.3.2.35) as a receipt's stat.
const char* StatOfState(uint8_t state) {
  switch (state) {
    case 1:
      return "ENROUTE";
    case 2:
      return "DELIVRD";
    case 3:
      return "EXPIRED";
    case 4:
      return "DELETED";
    case 5:
      return "UNDELIV";
    case 6:
      return "ACCEPTD";
    case 7:
      return "UNKNOWN";
    case 8:
      return "REJECTD";
    default:
      return "";
  }
}

}  // namespace

// The session: every member below the lock is touched only by the I/O
// thread; the inbox, stats and the stop flag are shared.
class SmppProvider::Session
    : public std::enable_shared_from_this<SmppProvider::Session> {
 public:
  Session(SmppOptions options, Timer* timer, ProviderEventSink events)
      : o_(std::move(options)), timer_(timer), events_(std::move(events)) {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }
  ~Session() {
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  bool ok() const { return wake_fd_ >= 0; }

  // Runs `fn` on the I/O thread. Any thread; never blocks for long. False
  // (and `fn` dropped) once the session has shut down.
  bool Post(std::function<void()> fn) {
    {
      MutexLock lock(&mu_);
      if (closed_) return false;
      inbox_.push_back(std::move(fn));
    }
    Wake();
    return true;
  }

  void Stop() {
    stopping_ = true;
    Wake();
  }

  SmppStats Stats() {
    MutexLock lock(&stats_mu_);
    return stats_;
  }

  void Send(std::vector<OutgoingMessage> batch, SendDone done) {
    auto b = std::make_shared<Batch>();
    b->results.resize(batch.size());
    b->left = batch.size();
    b->done = std::move(done);
    if (batch.empty()) {
      b->done({});
      return;
    }
    const size_t n = batch.size();
    auto msgs =
        std::make_shared<std::vector<OutgoingMessage>>(std::move(batch));
    if (!Post([this, b, msgs] { Enqueue(b, std::move(*msgs)); })) {
      // Shut down: answered here, once.
      b->done(
          std::vector<SendResult>(n, Failure(SendStatus::kTransient, "shutdown",
                                             "the provider is shutting down")));
    }
  }

  // The I/O thread's loop; returns after Stop() once the session unbound.
  void Run() {
    ScheduleConnect(absl::ZeroDuration());
    while (!stopping_) {
      pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {fd_, 0, 0}};
      int n = 1;
      if (fd_ >= 0) {
        fds[1].events = POLLIN;
        if (connecting_ || !out_.empty()) fds[1].events |= POLLOUT;
        n = 2;
      }
      if (poll(fds, n, -1) < 0) {
        if (errno == EINTR) continue;
        logging::Error(
            fmt::format("smpp {}: poll: {}", o_.name, strerror(errno)));
        break;
      }
      if (fds[0].revents & POLLIN) {
        uint64_t v;
        (void)!read(wake_fd_, &v, sizeof(v));
        RunInbox();
      }
      if (n == 2 && fd_ >= 0 && fds[1].revents != 0) {
        OnSocket(fds[1].revents);
      }
    }
    Shutdown();
  }

 private:
  struct Batch {
    std::vector<SendResult> results;
    size_t left = 0;
    SendDone done;
    // Ids the SMSC gave this batch's parts while it was open.
    std::vector<std::string> ids;
    // Receipts for those ids, handed over only after `done`.
    std::vector<std::function<void()>> after_done;
  };
  // One recipient's message: its parts go out in order.
  struct Message {
    std::shared_ptr<Batch> batch;
    size_t index = 0;
    std::string masked_to;
    std::vector<std::string> pdus;  // packed submit_sm, sequence 1
    size_t next = 0;                // next part to write
    size_t answered = 0;            // parts answered (or failed) so far
    size_t acked = 0;
    // The first part that failed: no further part is written, and the
    // message ends once the parts in flight are answered (PartFailed).
    std::optional<SendResult> failure;
    std::vector<std::string> ids;  // by part
    bool finished = false;
    absl::Time queued_at;
  };
  enum class Kind { kBind, kSubmit, kEnquire, kUnbind };
  struct Pending {
    Kind kind = Kind::kSubmit;
    std::shared_ptr<Message> msg;
    size_t part = 0;
    absl::Time deadline;
  };

  void Wake() {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }

  template <typename F>
  void Count(F f) {
    MutexLock lock(&stats_mu_);
    f(stats_);
  }

  void RunInbox() {
    std::vector<std::function<void()>> work;
    {
      MutexLock lock(&mu_);
      work.swap(inbox_);
    }
    for (auto& fn : work) fn();
  }

  // A timer callback that runs `fn` on the I/O thread if the session is
  // still there.
  void After(absl::Duration d, std::function<void()> fn) {
    std::weak_ptr<Session> weak = weak_from_this();
    timer_->At(timer_->Now() + d, [weak, fn = std::move(fn)]() mutable {
      if (std::shared_ptr<Session> s = weak.lock()) s->Post(std::move(fn));
    });
  }

  // --- Messages -------------------------------------------------------

  void Finish(const std::shared_ptr<Message>& m, SendResult r) {
    if (m->finished) return;
    m->finished = true;
    if (r.status == SendStatus::kAccepted && m->ids.size() > 1) {
      for (size_t i = 1; i < m->ids.size(); ++i) {
        RememberPart(m->ids[i], m->ids[0]);
      }
    }
    Batch& b = *m->batch;
    b.results[m->index] = std::move(r);
    if (--b.left == 0) {
      SendDone done = std::move(b.done);
      done(std::move(b.results));
      // The engine queued the batch's outcomes to the store inside `done`:
      // receipts for it, queued after, find their recipients.
      for (const std::string& id : b.ids) open_ids_.erase(id);
      std::vector<std::function<void()>> after;
      after.swap(b.after_done);
      for (auto& fn : after) fn();
    }
  }

  // A part of `m` failed with `r` (answered counts it already). Once no
  // part of `m` is in flight, `m` ends: with `r` when no part was accepted
  // (the engine may retry it whole); else as partially_sent, permanent,
  // since a retry would send the accepted parts a second time.
  void PartFailed(const std::shared_ptr<Message>& m, SendResult r) {
    if (m->finished) return;
    if (!m->failure.has_value()) m->failure = std::move(r);
    if (m->next > m->answered) return;  // parts still in flight
    if (m->acked == 0) {
      Finish(m, *m->failure);
      return;
    }
    logging::Warn(
        fmt::format("smpp {}: message to {} partially sent: {} of {} parts "
                    "accepted, then {}",
                    o_.name, m->masked_to, m->acked, m->pdus.size(),
                    m->failure->error_code));
    Finish(m, Failure(SendStatus::kPermanent, "partially_sent",
                      absl::StrCat(
                          m->acked, " of ", m->pdus.size(),
                          " parts accepted, then: ", m->failure->error_desc,
                          "; not sent again (RetryFailed sends "
                          "every part)")));
  }

  void RememberPart(const std::string& part_id, const std::string& first) {
    if (part_to_first_.emplace(part_id, first).second) {
      part_order_.push_back(part_id);
      if (part_order_.size() > SmppProvider::kMaxPartIds) {
        part_to_first_.erase(part_order_.front());
        part_order_.pop_front();
      }
    }
  }

  static SendResult Failure(SendStatus status, std::string code,
                            std::string desc) {
    SendResult r;
    r.status = status;
    r.error_code = std::move(code);
    r.error_desc = std::move(desc);
    return r;
  }

  // Packs the parts of `m`; a failure finishes it as permanent.
  bool Build(const OutgoingMessage& in, const std::shared_ptr<Message>& m) {
    absl::StatusOr<SmsParts> parts = EncodeSms(in.text);
    if (!parts.ok()) {
      Finish(m, Failure(SendStatus::kPermanent, "encoding",
                        absl::StrCat("cannot be sent as SMS: ",
                                     parts.status().message())));
      return false;
    }
    std::string to(in.address);
    if (!to.empty() && to[0] == '+') to.erase(0, 1);
    std::string from = in.sender_id;
    bool numeric = !from.empty();
    for (size_t i = 0; i < from.size(); ++i) {
      if (!(absl::ascii_isdigit(from[i]) || (i == 0 && from[i] == '+'))) {
        numeric = false;
      }
    }
    if (numeric && from[0] == '+') from.erase(0, 1);
    submit_sm_t s;
    memset(&s, 0, sizeof(s));
    s.command_id = SUBMIT_SM;
    s.sequence_number = 1;  // libsmpp34 refuses 0; Pump writes the real one
    s.source_addr_ton = numeric ? 1 : 5;
    s.source_addr_npi = numeric ? 1 : 0;
    s.dest_addr_ton = 1;
    s.dest_addr_npi = 1;
    s.registered_delivery = 1;
    s.data_coding = parts->data_coding;
    if (!CopyCOctet(from, s.source_addr, sizeof(s.source_addr))) {
      Finish(m, Failure(SendStatus::kPermanent, "sender_id",
                        "sender id longer than SMPP's 20 characters"));
      return false;
    }
    if (to.empty() ||
        !CopyCOctet(to, s.destination_addr, sizeof(s.destination_addr))) {
      Finish(m, Failure(SendStatus::kPermanent, "address",
                        "address empty or longer than SMPP's 20 digits"));
      return false;
    }
    const int count = static_cast<int>(parts->parts.size());
    const uint8_t ref = next_ref_++;
    for (int i = 0; i < count; ++i) {
      std::string sm = parts->parts[i];
      if (count > 1) {
        sm = ConcatUdh(ref, i + 1, count) + sm;
        s.esm_class = kEsmUdhi;
      }
      s.sm_length = static_cast<uint8_t>(sm.size());
      memcpy(s.short_message, sm.data(), sm.size());
      std::string pdu = Pack(SUBMIT_SM, &s);
      if (pdu.empty()) {
        Finish(m, Failure(SendStatus::kPermanent, "encoding",
                          "cannot pack submit_sm"));
        return false;
      }
      m->pdus.push_back(std::move(pdu));
    }
    m->ids.resize(count);
    return true;
  }

  void Enqueue(const std::shared_ptr<Batch>& b,
               std::vector<OutgoingMessage> batch) {
    const absl::Time now = timer_->Now();
    for (size_t i = 0; i < batch.size(); ++i) {
      auto m = std::make_shared<Message>();
      m->batch = b;
      m->index = i;
      m->masked_to = logging::MaskAddress(batch[i].address);
      m->queued_at = now;
      if (!unusable_.empty()) {
        Finish(m, Failure(SendStatus::kUnusable, "bind_refused", unusable_));
        continue;
      }
      if (!Build(batch[i], m)) continue;
      queue_.push_back(std::move(m));
    }
    Pump();
    ArmSweep();
  }

  // Writes parts while the window has room.
  void Pump() {
    if (state_ != State::kBound) return;
    while (!queue_.empty() && outstanding_submits_ < o_.window) {
      std::shared_ptr<Message> m = queue_.front();
      if (m->finished || m->failure.has_value()) {
        queue_.pop_front();
        continue;
      }
      const size_t part = m->next++;
      if (m->next == m->pdus.size()) queue_.pop_front();
      const uint32_t seq = NextSeq();
      std::string& pdu = m->pdus[part];
      const uint32_t nseq = htonl(seq);
      memcpy(pdu.data() + 12, &nseq, 4);
      out_ += pdu;
      Pending p;
      p.kind = Kind::kSubmit;
      p.msg = m;
      p.part = part;
      Track(seq, std::move(p));
      ++outstanding_submits_;
      Count([&](SmppStats& s) {
        ++s.submits;
        s.max_outstanding =
            std::max<int64_t>(s.max_outstanding, outstanding_submits_);
      });
    }
    Flush();
  }

  uint32_t NextSeq() {
    if (seq_ >= 0x7FFFFFFF) seq_ = 0;
    return ++seq_;
  }

  void Track(uint32_t seq, Pending p) {
    p.deadline = timer_->Now() + o_.timeout;
    deadlines_.emplace_back(p.deadline, seq);
    pending_[seq] = std::move(p);
    ArmSweep();
  }

  // --- Timeouts: one pending sweep alarm at a time ------------------

  void ArmSweep() {
    absl::Time next = absl::InfiniteFuture();
    while (!deadlines_.empty() &&
           !pending_.contains(deadlines_.front().second)) {
      deadlines_.pop_front();
    }
    if (!deadlines_.empty()) next = deadlines_.front().first;
    if (state_ != State::kBound && !queue_.empty()) {
      next = std::min(next, queue_.front()->queued_at + o_.timeout);
    }
    if (next == absl::InfiniteFuture() || next >= sweep_at_) return;
    sweep_at_ = next;
    After(next - timer_->Now() + absl::Milliseconds(1), [this] {
      sweep_at_ = absl::InfiniteFuture();
      Sweep();
    });
  }

  void Sweep() {
    const absl::Time now = timer_->Now();
    bool drop = false;
    while (!deadlines_.empty() && deadlines_.front().first <= now) {
      const uint32_t seq = deadlines_.front().second;
      deadlines_.pop_front();
      auto it = pending_.find(seq);
      if (it == pending_.end() || it->second.deadline > now) continue;
      Pending p = std::move(it->second);
      pending_.erase(it);
      Count([](SmppStats& s) { ++s.timeouts; });
      if (p.kind == Kind::kSubmit) {
        --outstanding_submits_;
        Count([](SmppStats& s) { ++s.transient; });
        ++p.msg->answered;
        PartFailed(p.msg,
                   Failure(SendStatus::kTransient, "timeout",
                           absl::StrCat("no submit_sm_resp within ",
                                        absl::FormatDuration(o_.timeout))));
        // The SMSC may still answer it: a new connection keeps the window
        // true and no late answer is mistaken.
        logging::Warn(
            fmt::format("smpp {}: no submit_sm_resp within {}: reconnecting",
                        o_.name, absl::FormatDuration(o_.timeout)));
        drop = true;
      } else {
        logging::Warn(fmt::format(
            "smpp {}: no answer to {} within {}: reconnecting", o_.name,
            p.kind == Kind::kBind ? "bind_transceiver" : "enquire_link",
            absl::FormatDuration(o_.timeout)));
        drop = true;
      }
    }
    if (state_ != State::kBound) {
      while (!queue_.empty() && queue_.front()->queued_at + o_.timeout <= now) {
        std::shared_ptr<Message> m = queue_.front();
        queue_.pop_front();
        Count([](SmppStats& s) { ++s.transient; });
        Finish(m,
               Failure(SendStatus::kTransient, "not_connected",
                       absl::StrCat("not bound to the SMSC: ", last_error_)));
      }
    }
    if (drop) {
      Drop("a PDU timed out");
    } else {
      Pump();
    }
    ArmSweep();
  }

  // --- Connection -----------------------------------------------------

  enum class State { kDisconnected, kConnecting, kBinding, kBound, kUnbinding };

  void ScheduleConnect(absl::Duration delay) {
    const uint64_t gen = ++connect_gen_;
    After(delay, [this, gen] {
      if (gen == connect_gen_ && state_ == State::kDisconnected) Connect();
    });
  }

  void Connect() {
    if (stopping_) return;
    addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(o_.port);
    int rc = getaddrinfo(o_.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0 || res == nullptr) {
      Failed(absl::StrCat("cannot resolve ", o_.host, ": ", gai_strerror(rc)));
      return;
    }
    fd_ = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      freeaddrinfo(res);
      Failed(absl::StrCat("socket: ", strerror(errno)));
      return;
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    rc = connect(fd_, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno != EINPROGRESS) {
      Failed(absl::StrCat("connect to ", o_.host, ":", o_.port, ": ",
                          strerror(errno)));
      return;
    }
    state_ = State::kConnecting;
    connecting_ = true;
    in_.clear();
    out_.clear();
    // A connect to a host that never answers would otherwise wait for the
    // kernel's SYN retries (minutes).
    const uint64_t gen = conn_gen_;
    After(o_.timeout, [this, gen] {
      if (gen == conn_gen_ && connecting_) {
        Failed(absl::StrCat("connect to ", o_.host, ":", o_.port,
                            ": no answer within ",
                            absl::FormatDuration(o_.timeout)));
      }
    });
  }

  void Connected() {
    connecting_ = false;
    Count([](SmppStats& s) { ++s.connects; });
    state_ = State::kBinding;
    bind_transceiver_t b;
    memset(&b, 0, sizeof(b));
    b.command_id = BIND_TRANSCEIVER;
    const uint32_t seq = NextSeq();
    b.sequence_number = seq;
    b.interface_version = SMPP_VERSION;
    if (!CopyCOctet(o_.system_id, b.system_id, sizeof(b.system_id)) ||
        !CopyCOctet(o_.password, b.password, sizeof(b.password)) ||
        !CopyCOctet(o_.system_type, b.system_type, sizeof(b.system_type))) {
      Refused("system_id, password or system_type too long for SMPP");
      return;
    }
    std::string pdu = Pack(BIND_TRANSCEIVER, &b);
    memset(&b, 0, sizeof(b));  // the password
    if (pdu.empty()) {
      Failed("cannot pack bind_transceiver");
      return;
    }
    out_ += pdu;
    Pending p;
    p.kind = Kind::kBind;
    Track(seq, std::move(p));
    Flush();
  }

  // The connection failed before binding: retry after the backoff.
  void Failed(const std::string& why) {
    last_error_ = why;
    logging::Warn(fmt::format("smpp {}: {}; retrying in {}", o_.name, why,
                              absl::FormatDuration(backoff_)));
    CloseSocket();
    Backoff();
  }

  void Backoff() {
    ScheduleConnect(backoff_);
    backoff_ = std::min(backoff_ * 2, o_.reconnect_max);
    ArmSweep();
  }

  // The SMSC refused the bind: unusable until a bind succeeds.
  void Refused(const std::string& why) {
    Count([](SmppStats& s) { ++s.binds_refused; });
    unusable_ = absl::StrCat("bind refused: ", why);
    logging::Error(fmt::format("smpp {}: {} (system_id {}); retrying in {}",
                               o_.name, unusable_, o_.system_id,
                               absl::FormatDuration(backoff_)));
    last_error_ = unusable_;
    CloseSocket();
    std::deque<std::shared_ptr<Message>> queued;
    queued.swap(queue_);
    for (auto& m : queued) {
      Finish(m, Failure(SendStatus::kUnusable, "bind_refused", unusable_));
    }
    Backoff();
  }

  // Ends the connection: what was written and not answered ends
  // transiently (never written again); queued parts wait for the next
  // connection, except those of messages already partly written.
  void Drop(const std::string& why) {
    const bool was_bound = state_ == State::kBound;
    Count([](SmppStats& s) { ++s.drops; });
    last_error_ = absl::StrCat("connection lost: ", why);
    logging::Warn(
        fmt::format("smpp {}: {} ({} submit_sm unanswered); reconnecting",
                    o_.name, last_error_, outstanding_submits_));
    CloseSocket();
    if (was_bound) backoff_ = o_.reconnect_min;
    Backoff();
  }

  void CloseSocket() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    connecting_ = false;
    state_ = State::kDisconnected;
    in_.clear();
    out_.clear();
    ++conn_gen_;
    absl::flat_hash_map<uint32_t, Pending> pending;
    pending.swap(pending_);
    deadlines_.clear();
    outstanding_submits_ = 0;
    for (auto& [seq, p] : pending) {
      if (p.kind != Kind::kSubmit) continue;
      Count([](SmppStats& s) { ++s.transient; });
      ++p.msg->answered;
      PartFailed(p.msg, Failure(SendStatus::kTransient, "connection_reset",
                                "connection to the SMSC lost before "
                                "submit_sm_resp"));
    }
    // A message with parts written cannot go on on another connection.
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->next > 0) {
        PartFailed(*it, Failure(SendStatus::kTransient, "connection_reset",
                                "connection to the SMSC lost between parts"));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void OnSocket(short revents) {
    if (connecting_) {
      if (revents & (POLLOUT | POLLERR | POLLHUP)) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          Failed(absl::StrCat("connect to ", o_.host, ":", o_.port, ": ",
                              strerror(err)));
          return;
        }
        Connected();
      }
      return;
    }
    if (revents & POLLIN || revents & (POLLERR | POLLHUP)) {
      if (!Read()) return;
    }
    if (fd_ >= 0 && (revents & POLLOUT)) Flush();
  }

  // Writes what it can of out_; false when the connection dropped.
  bool Flush() {
    while (fd_ >= 0 && !connecting_ && !out_.empty()) {
      ssize_t n = send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;
        Drop(absl::StrCat("write: ", strerror(errno)));
        return false;
      }
      out_.erase(0, n);
    }
    return true;
  }

  bool Read() {
    char buf[16384];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n == 0) {
        if (state_ == State::kUnbinding) {
          CloseSocket();
          return false;
        }
        Drop("closed by the SMSC");
        return false;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        Drop(absl::StrCat("read: ", strerror(errno)));
        return false;
      }
      in_.append(buf, n);
      if (static_cast<size_t>(n) < sizeof(buf)) break;
    }
    size_t off = 0;
    const uint64_t gen = conn_gen_;
    while (in_.size() - off >= 4) {
      const uint8_t* p = reinterpret_cast<const uint8_t*>(in_.data()) + off;
      const uint32_t len = ReadBe32(p);
      if (len < kHeaderSize || len > kMaxPduSize) {
        Count([](SmppStats& s) { ++s.bad_pdus; });
        logging::Error(
            fmt::format("smpp {}: PDU with command_length {}: dropping the "
                        "connection",
                        o_.name, len));
        Drop("a PDU with a wrong length");
        return false;
      }
      if (in_.size() - off < len) break;
      OnPdu(p, len);
      if (gen != conn_gen_) return false;  // dropped while handling it
      off += len;
    }
    in_.erase(0, off);
    Pump();
    return fd_ >= 0;
  }

  // --- PDUs -------------------------------------------------------------

  void OnPdu(const uint8_t* p, uint32_t len) {
    const uint32_t id = ReadBe32(p + 4);
    const uint32_t status = ReadBe32(p + 8);
    const uint32_t seq = ReadBe32(p + 12);
    switch (id) {
      case SUBMIT_SM_RESP:
        OnSubmitResp(p, len, status, seq);
        return;
      case BIND_TRANSCEIVER_RESP:
        OnBindResp(status, seq);
        return;
      case GENERIC_NACK:
        OnGenericNack(status, seq);
        return;
      case DELIVER_SM:
        OnDeliver(p, len, seq);
        return;
      case ENQUIRE_LINK:
        out_ += HeaderOnly(ENQUIRE_LINK_RESP, 0, seq);
        Count([](SmppStats& s) { ++s.enquire_links_answered; });
        Flush();
        return;
      case ENQUIRE_LINK_RESP:
        Answered(seq, Kind::kEnquire);
        return;
      case UNBIND:
        out_ += HeaderOnly(UNBIND_RESP, 0, seq);
        Flush();
        Drop("the SMSC unbound");
        return;
      case UNBIND_RESP:
        Answered(seq, Kind::kUnbind);
        if (state_ == State::kUnbinding) CloseSocket();
        return;
      default:
        Count([](SmppStats& s) { ++s.bad_pdus; });
        logging::Warn(
            fmt::format("smpp {}: unexpected command_id 0x{:08X} (seq {})",
                        o_.name, id, seq));
        if ((id & 0x80000000u) == 0) {
          out_ += HeaderOnly(GENERIC_NACK, ESME_RINVCMDID, seq);
          Flush();
        }
        return;
    }
  }

  // Forgets the request `seq` of `kind`; false when there was none.
  bool Answered(uint32_t seq, Kind kind) {
    auto it = pending_.find(seq);
    if (it == pending_.end() || it->second.kind != kind) {
      Count([](SmppStats& s) { ++s.unknown_responses; });
      logging::Warn(fmt::format(
          "smpp {}: a response to no request of ours (seq {})", o_.name, seq));
      return false;
    }
    pending_.erase(it);
    return true;
  }

  void OnBindResp(uint32_t status, uint32_t seq) {
    if (!Answered(seq, Kind::kBind)) return;
    if (status != 0) {
      Refused(SmppStatusCode(status));
      return;
    }
    Count([](SmppStats& s) { ++s.binds_ok; });
    if (!unusable_.empty()) {
      logging::Info(
          fmt::format("smpp {}: bound again after \"{}\"", o_.name, unusable_));
    }
    unusable_.clear();
    last_error_.clear();
    state_ = State::kBound;
    backoff_ = o_.reconnect_min;
    ScheduleEnquire();
    Pump();
  }

  void ScheduleEnquire() {
    const uint64_t gen = conn_gen_;
    After(o_.enquire_link, [this, gen] {
      if (gen != conn_gen_ || state_ != State::kBound) return;
      const uint32_t seq = NextSeq();
      out_ += HeaderOnly(ENQUIRE_LINK, 0, seq);
      Pending p;
      p.kind = Kind::kEnquire;
      Track(seq, std::move(p));
      if (Flush()) ScheduleEnquire();
    });
  }

  void EndSubmit(uint32_t seq, uint32_t status, const std::string& msg_id) {
    auto it = pending_.find(seq);
    if (it == pending_.end() || it->second.kind != Kind::kSubmit) {
      Count([](SmppStats& s) { ++s.unknown_responses; });
      logging::Warn(
          fmt::format("smpp {}: submit_sm_resp for no submit_sm of ours "
                      "(seq {}, status {})",
                      o_.name, seq, SmppStatusCode(status)));
      return;
    }
    Pending p = std::move(it->second);
    pending_.erase(it);
    --outstanding_submits_;
    Message& m = *p.msg;
    ++m.answered;
    if (status == 0) {
      Count([](SmppStats& s) { ++s.accepted; });
      m.ids[p.part] = msg_id;
      if (m.batch->left > 0) {
        m.batch->ids.push_back(msg_id);
        open_ids_[msg_id] = m.batch;
      }
      if (++m.acked == m.pdus.size()) {
        SendResult r;
        r.status = SendStatus::kAccepted;
        r.provider_message_id = m.ids[0];
        Finish(p.msg, std::move(r));
      } else if (m.failure.has_value()) {
        PartFailed(p.msg, *m.failure);  // the last in flight: it ends now
      }
      return;
    }
    if (status == ESME_RTHROTTLED || status == ESME_RMSGQFUL) {
      Count([](SmppStats& s) { ++s.transient; });
      SendResult r = Failure(SendStatus::kTransient, SmppStatusCode(status),
                             status == ESME_RTHROTTLED
                                 ? "SMSC throttled (ESME_RTHROTTLED)"
                                 : "SMSC queue full (ESME_RMSGQFUL)");
      r.retry_after = o_.throttled_retry_after;
      PartFailed(p.msg, std::move(r));
      return;
    }
    Count([](SmppStats& s) { ++s.permanent; });
    logging::Info(fmt::format("smpp {}: submit_sm to {} refused: {}", o_.name,
                              m.masked_to, SmppStatusCode(status)));
    PartFailed(p.msg, Failure(SendStatus::kPermanent, SmppStatusCode(status),
                              absl::StrCat("SMSC refused submit_sm: ",
                                           SmppStatusCode(status))));
  }

  void OnSubmitResp(const uint8_t* p, uint32_t len, uint32_t status,
                    uint32_t seq) {
    std::string msg_id;
    if (status == 0) {
      submit_sm_resp_t r;
      memset(&r, 0, sizeof(r));
      int rc;
      {
        MutexLock lock(&LibMutex());
        rc = smpp34_unpack(SUBMIT_SM_RESP, &r, p, len);
      }
      msg_id = COctet(r.message_id, sizeof(r.message_id));
      if (rc != 0 || msg_id.empty()) {
        Count([](SmppStats& s) { ++s.bad_pdus; });
        logging::Error(
            fmt::format("smpp {}: submit_sm_resp (seq {}) without a readable "
                        "message_id",
                        o_.name, seq));
        // Taken, but unmatchable: as after a crash, not retried.
        auto it = pending_.find(seq);
        if (it != pending_.end() && it->second.kind == Kind::kSubmit) {
          std::shared_ptr<Message> m = it->second.msg;
          pending_.erase(it);
          --outstanding_submits_;
          Finish(m, Failure(SendStatus::kPermanent, "outcome_unknown",
                            "SMSC accepted the message without a "
                            "readable message_id"));
        }
        return;
      }
    }
    EndSubmit(seq, status, msg_id);
  }

  void OnGenericNack(uint32_t status, uint32_t seq) {
    auto it = pending_.find(seq);
    if (it != pending_.end() && it->second.kind == Kind::kSubmit) {
      EndSubmit(seq, status == 0 ? ESME_RUNKNOWNERR : status, "");
      return;
    }
    Count([](SmppStats& s) { ++s.unknown_responses; });
    logging::Warn(fmt::format("smpp {}: generic_nack {} (seq {})", o_.name,
                              SmppStatusCode(status), seq));
    if (it != pending_.end()) Drop("generic_nack to a session PDU");
  }

  void AnswerDeliver(uint32_t seq, uint32_t status) {
    deliver_sm_resp_t r;
    memset(&r, 0, sizeof(r));
    r.command_id = DELIVER_SM_RESP;
    r.command_status = status;
    r.sequence_number = seq;
    std::string pdu = Pack(DELIVER_SM_RESP, &r);
    if (pdu.empty()) return;
    out_ += pdu;
    Flush();
  }

  void OnDeliver(const uint8_t* p, uint32_t len, uint32_t seq) {
    deliver_sm_t d;
    memset(&d, 0, sizeof(d));
    int rc;
    std::string why;
    {
      MutexLock lock(&LibMutex());
      rc = smpp34_unpack(DELIVER_SM, &d, p, len);
      if (rc != 0) why = LibError();
    }
    if (rc != 0) {
      Count([](SmppStats& s) { ++s.bad_pdus; });
      logging::Error(fmt::format(
          "smpp {}: cannot unpack deliver_sm (seq {}, {} bytes): {}; "
          "answered ESME_RX_P_APPN",
          o_.name, seq, len, why));
      destroy_tlv(d.tlv);
      // Permanent: delivering the same bytes again would not help.
      AnswerDeliver(seq, ESME_RX_P_APPN);
      return;
    }
    std::string receipted_id;
    int state = -1;
    for (tlv_t* t = d.tlv; t != nullptr; t = t->next) {
      if (t->tag == TLVID_receipted_message_id) {
        receipted_id = COctet(t->value.octet, std::min<size_t>(t->length, 65));
      } else if (t->tag == TLVID_message_state) {
        state = t->value.val08;
      }
    }
    destroy_tlv(d.tlv);
    const std::string text(
        reinterpret_cast<const char*>(d.short_message),
        std::min<size_t>(d.sm_length, sizeof(d.short_message)));
    const std::string from = COctet(d.source_addr, sizeof(d.source_addr));
    const std::string to =
        COctet(d.destination_addr, sizeof(d.destination_addr));
    WebhookEvents events;
    if (d.esm_class & kEsmReceipt) {
      absl::StatusOr<ReceiptUpdate> r = Receipt(text, receipted_id, state);
      if (!r.ok()) {
        Count([](SmppStats& s) { ++s.malformed_receipts; });
        logging::Warn(fmt::format(
            "smpp {}: unreadable delivery receipt (seq {}) from {}: "
            "{}; acknowledged and ignored",
            o_.name, seq, logging::MaskAddress(from),
            std::string(r.status().message())));
        AnswerDeliver(seq, ESME_ROK);
        return;
      }
      if (r->provider_message_id.empty()) {  // not final
        AnswerDeliver(seq, ESME_ROK);
        return;
      }
      Count([](SmppStats& s) { ++s.receipts; });
      // A receipt can overtake its message's outcome (the SMSC sends it
      // right after submit_sm_resp, while the rest of the batch is still
      // out): it waits for the batch's result to reach the engine, or it
      // would match no recipient.
      auto open = open_ids_.find(receipted_id.empty() ? r->provider_message_id
                                                      : receipted_id);
      if (open == open_ids_.end()) {
        open = open_ids_.find(r->provider_message_id);
      }
      if (open != open_ids_.end()) {
        std::shared_ptr<Batch> b = open->second.lock();
        if (b != nullptr && b->left > 0) {
          const uint64_t gen = conn_gen_;
          b->after_done.push_back(
              [this, u = *std::move(r), seq, gen]() mutable {
                auto part = part_to_first_.find(u.provider_message_id);
                if (part != part_to_first_.end()) {
                  u.provider_message_id = part->second;
                }
                WebhookEvents later;
                later.receipts.push_back(std::move(u));
                HandOver(std::move(later), seq, gen);
              });
          return;
        }
      }
      events.receipts.push_back(*std::move(r));
    } else {
      InboundText in;
      in.channel = Channel::kSms;
      in.from = absl::StrCat(d.source_addr_ton == 1 ? "+" : "", from);
      in.to = to;
      in.text = DecodeText(text, d.data_coding, d.esm_class);
      Count([](SmppStats& s) { ++s.inbound; });
      events.inbound.push_back(std::move(in));
    }
    HandOver(std::move(events), seq, conn_gen_);
  }

  // Gives `events` of deliver_sm `seq` (on connection `gen`) to the sink
  // and answers it once they are committed.
  void HandOver(WebhookEvents events, uint32_t seq, uint64_t gen) {
    if (!events_) {
      if (gen == conn_gen_) AnswerDeliver(seq, ESME_RSYSERR);
      return;
    }
    std::weak_ptr<Session> weak = weak_from_this();
    events_(o_.name, std::move(events), [weak, gen, seq](absl::Status s) {
      std::shared_ptr<Session> self = weak.lock();
      if (!self) return;
      self->Post([self = self.get(), gen, seq, s] {
        if (gen != self->conn_gen_ || self->fd_ < 0) return;  // redelivered
        // Not stored: a temporary error, so the SMSC delivers it again
        // later (SMPP 3.4 5.1.3: ESME_RX_T_APPN asks for a retry).
        if (!s.ok()) {
          logging::Warn(
              fmt::format("smpp {}: deliver_sm (seq {}) not stored: {}; "
                          "answering ESME_RX_T_APPN (the SMSC retries)",
                          self->o_.name, seq, std::string(s.message())));
        }
        self->AnswerDeliver(seq, s.ok() ? ESME_ROK : ESME_RX_T_APPN);
      });
    });
  }

  // A receipt as a ReceiptUpdate; an empty provider_message_id when its
  // state is not final.
  absl::StatusOr<ReceiptUpdate> Receipt(const std::string& text,
                                        const std::string& tlv_id, int state) {
    SmppReceiptText f;
    absl::StatusOr<SmppReceiptText> parsed = ParseReceiptText(text);
    if (parsed.ok()) {
      f = *std::move(parsed);
    } else if (tlv_id.empty() || state < 0) {
      return parsed.status();
    }
    if (!tlv_id.empty()) f.id = tlv_id;
    if (f.stat.empty()) f.stat = StatOfState(static_cast<uint8_t>(state));
    absl::StatusOr<std::optional<RecipientStatus>> st = ReceiptStatusOf(f.stat);
    if (!st.ok()) return st.status();
    ReceiptUpdate r;
    r.occurred_at = timer_->Now();
    if (!st->has_value()) return r;
    auto part = part_to_first_.find(f.id);
    r.provider_message_id = part == part_to_first_.end() ? f.id : part->second;
    r.status = **st;
    if (r.status == RecipientStatus::kFailed) {
      r.error_code = f.err.empty() ? f.stat : f.err;
      r.error_desc = absl::StrCat("SMSC receipt stat:", f.stat,
                                  f.err.empty() ? "" : " err:", f.err);
    }
    return r;
  }

  // An MO text's short_message as UTF-8 (its UDH, if any, left out).
  static std::string DecodeText(const std::string& sm, uint8_t coding,
                                uint8_t esm) {
    std::string body = sm;
    if ((esm & kEsmUdhi) && !body.empty()) {
      const size_t udh = static_cast<uint8_t>(body[0]) + 1;
      body = udh < body.size() ? body.substr(udh) : "";
    }
    std::string out;
    auto put = [&out](char32_t c) {
      if (c < 0x80) {
        out.push_back(static_cast<char>(c));
      } else if (c < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (c >> 6)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
      } else if (c < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (c >> 12)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xF0 | (c >> 18)));
        out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
      }
    };
    if ((coding & 0x0F) == 8) {
      for (size_t i = 0; i + 1 < body.size(); i += 2) {
        char32_t u = (static_cast<uint8_t>(body[i]) << 8) |
                     static_cast<uint8_t>(body[i + 1]);
        if (u >= 0xD800 && u < 0xDC00 && i + 3 < body.size()) {
          const char32_t lo = (static_cast<uint8_t>(body[i + 2]) << 8) |
                              static_cast<uint8_t>(body[i + 3]);
          u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
          i += 2;
        }
        put(u);
      }
      return out;
    }
    if (coding == 0) {  // GSM-7, one septet a byte
      for (size_t i = 0; i < body.size(); ++i) {
        const uint8_t b = static_cast<uint8_t>(body[i]) & 0x7F;
        if (b == 0x1B && i + 1 < body.size()) {
          const uint8_t e = static_cast<uint8_t>(body[++i]);
          static const std::pair<uint8_t, char32_t> kExt[] = {
              {0x0A, U'\f'}, {0x14, U'^'}, {0x28, U'{'}, {0x29, U'}'},
              {0x2F, U'\\'}, {0x3C, U'['}, {0x3D, U'~'}, {0x3E, U']'},
              {0x40, U'|'},  {0x65, U'€'}};
          for (const auto& [k, c] : kExt) {
            if (k == e) put(c);
          }
          continue;
        }
        put(kGsmDefault[b]);
      }
      return out;
    }
    return body;  // Latin-1 / IA5 and the like: as given
  }

  // Unbinds (at most a second), then answers everything left.
  void Shutdown() {
    if (state_ == State::kBound && fd_ >= 0) {
      const uint32_t seq = NextSeq();
      out_ += HeaderOnly(UNBIND, 0, seq);
      Pending p;
      p.kind = Kind::kUnbind;
      p.deadline = absl::InfiniteFuture();
      pending_[seq] = std::move(p);
      state_ = State::kUnbinding;
      // The one wait with a deadline of its own: the timer may be stopping.
      const absl::Time until = absl::Now() + absl::Seconds(1);
      while (fd_ >= 0 && absl::Now() < until) {
        pollfd f = {
            fd_, static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT)), 0};
        const int ms = static_cast<int>(
            absl::ToInt64Milliseconds(until - absl::Now()) + 1);
        if (poll(&f, 1, ms) <= 0) break;
        if ((f.revents & POLLOUT) && !Flush()) break;
        if (f.revents & (POLLIN | POLLERR | POLLHUP)) Read();
      }
    }
    CloseSocket();
    for (;;) {  // Sends that raced the stop; after these, Post refuses
      {
        MutexLock lock(&mu_);
        if (inbox_.empty()) {
          closed_ = true;
          break;
        }
      }
      RunInbox();
    }
    std::deque<std::shared_ptr<Message>> queued;
    queued.swap(queue_);
    for (auto& m : queued) {
      Finish(m, Failure(SendStatus::kTransient, "shutdown",
                        "the provider is shutting down"));
    }
  }

  const SmppOptions o_;
  Timer* const timer_;
  const ProviderEventSink events_;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};

  Mutex mu_;
  std::vector<std::function<void()>> inbox_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;  // Shutdown has run the last
  Mutex stats_mu_;
  SmppStats stats_ ABSL_GUARDED_BY(stats_mu_);

  // The I/O thread's.
  State state_ = State::kDisconnected;
  int fd_ = -1;
  bool connecting_ = false;
  std::string in_;
  std::string out_;
  uint32_t seq_ = 0;
  uint8_t next_ref_ = 1;
  uint64_t conn_gen_ = 0;     // bumped when a connection ends
  uint64_t connect_gen_ = 0;  // the one scheduled connect that counts
  absl::Duration backoff_ = o_.reconnect_min;
  std::string unusable_;    // "bind refused: …" while refused
  std::string last_error_;  // why we are not bound
  std::deque<std::shared_ptr<Message>> queue_;
  absl::flat_hash_map<uint32_t, Pending> pending_;
  std::deque<std::pair<absl::Time, uint32_t>> deadlines_;  // in order
  int outstanding_submits_ = 0;
  absl::Time sweep_at_ = absl::InfiniteFuture();
  absl::flat_hash_map<std::string, std::string> part_to_first_;
  // Ids of parts accepted in batches whose result is not out yet.
  absl::flat_hash_map<std::string, std::weak_ptr<Batch>> open_ids_;
  std::deque<std::string> part_order_;
};

absl::StatusOr<std::unique_ptr<SmppProvider>> SmppProvider::Create(
    SmppOptions options, Timer* timer, ProviderEventSink events) {
  if (options.host.empty()) return absl::InvalidArgumentError("host: empty");
  if (options.window < 1) {
    return absl::InvalidArgumentError("window: must be at least 1");
  }
  if (timer == nullptr) return absl::InvalidArgumentError("no timer");
  if (options.timeout <= absl::ZeroDuration())
    options.timeout = absl::Seconds(10);
  if (options.enquire_link <= absl::ZeroDuration()) {
    options.enquire_link = absl::Seconds(30);
  }
  const int window = options.window;
  auto session =
      std::make_shared<Session>(std::move(options), timer, std::move(events));
  if (!session->ok()) {
    return absl::InternalError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  std::unique_ptr<SmppProvider> p(new SmppProvider(session, window));
  p->thread_ = std::thread([s = session.get()] {
    pthread_setname_np(pthread_self(), "smpp-io");
    s->Run();
  });
  return p;
}

SmppProvider::SmppProvider(std::shared_ptr<Session> session, int window)
    : session_(std::move(session)), window_(window) {}

SmppProvider::~SmppProvider() {
  session_->Stop();
  if (thread_.joinable()) thread_.join();
}

void SmppProvider::Send(std::vector<OutgoingMessage> batch, SendDone done) {
  session_->Send(std::move(batch), std::move(done));
}

SmppStats SmppProvider::Stats() const { return session_->Stats(); }

}  // namespace campaigns::dispatch
