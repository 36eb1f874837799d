// CsvParser: an incremental RFC 4180 CSV parser over chunks of bytes.
#include "server/domain/csv.h"

#include "absl/strings/str_cat.h"
#include "server/domain/errors.h"

namespace campaigns {
namespace {

constexpr absl::string_view kBom = "\xEF\xBB\xBF";

}  // namespace

void CsvParser::EndField() {
  record_.fields.push_back(std::move(field_));
  field_.clear();
}

void CsvParser::EndRecord(const RecordFn& on_record) {
  if (record_started_) on_record(record_);
  record_.fields.clear();
  record_.error.clear();
  field_.clear();
  record_bytes_ = 0;
  record_started_ = false;
}

void CsvParser::MarkMalformed(absl::string_view why) {
  if (record_.error.empty()) record_.error = std::string(why);
  // Keep what was read of the current field.
  record_.fields.push_back(std::move(field_));
  field_.clear();
  state_ = State::kSkipToEol;
}

absl::Status CsvParser::Feed(absl::string_view chunk,
                             const RecordFn& on_record) {
  if (!bom_checked_) {
    // Hold the first bytes until we know whether they are a BOM.
    const size_t take =
        std::min(kBom.size() - bom_prefix_.size(), chunk.size());
    bom_prefix_.append(chunk.data(), take);
    chunk.remove_prefix(take);
    if (bom_prefix_.size() < kBom.size() &&
        kBom.substr(0, bom_prefix_.size()) == bom_prefix_) {
      return absl::OkStatus();  // could still be a BOM: wait for more
    }
    bom_checked_ = true;
    std::string held = std::move(bom_prefix_);
    bom_prefix_.clear();
    if (held != kBom) RETURN_IF_ERROR(Feed(held, on_record));
  }

  for (size_t i = 0; i < chunk.size(); ++i) {
    const char c = chunk[i];
    switch (state_) {
      case State::kAfterCr:
        state_ = State::kFieldStart;
        if (c == '\n') continue;  // "\r\n": already ended the record
        [[fallthrough]];
      case State::kFieldStart:
        if (c == '"') {
          state_ = State::kQuoted;
          record_started_ = true;
          break;
        }
        [[fallthrough]];
      case State::kUnquoted:
        if (c == ',') {
          record_started_ = true;
          EndField();
          state_ = State::kFieldStart;
        } else if (c == '\n' || c == '\r') {
          if (record_started_) EndField();
          EndRecord(on_record);
          ++line_;
          record_.line = line_;
          state_ = c == '\r' ? State::kAfterCr : State::kFieldStart;
        } else if (c == '"') {
          MarkMalformed("a quote inside an unquoted field");
        } else {
          record_started_ = true;
          field_.push_back(c);
          state_ = State::kUnquoted;
        }
        break;
      case State::kQuoted:
        if (c == '"') {
          state_ = State::kQuoteInQuoted;
        } else {
          if (c == '\n') ++line_;
          field_.push_back(c);
        }
        break;
      case State::kQuoteInQuoted:
        if (c == '"') {
          field_.push_back('"');
          state_ = State::kQuoted;
        } else if (c == ',') {
          EndField();
          state_ = State::kFieldStart;
        } else if (c == '\n' || c == '\r') {
          EndField();
          EndRecord(on_record);
          ++line_;
          record_.line = line_;
          state_ = c == '\r' ? State::kAfterCr : State::kFieldStart;
        } else {
          MarkMalformed("text after a closing quote");
        }
        break;
      case State::kSkipToEol:
        if (c == '\n' || c == '\r') {
          EndRecord(on_record);
          ++line_;
          record_.line = line_;
          state_ = c == '\r' ? State::kAfterCr : State::kFieldStart;
        }
        break;
    }
    if (record_started_ && ++record_bytes_ > limits_.max_record_bytes) {
      return errors::InvalidField(
          "csv_chunk",
          absl::StrCat("the record on line ", record_.line, " is larger than ",
                       limits_.max_record_bytes, " bytes"));
    }
    if (field_.size() > limits_.max_field_bytes) {
      return errors::InvalidField(
          "csv_chunk",
          absl::StrCat("a field on line ", record_.line, " is larger than ",
                       limits_.max_field_bytes, " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::Status CsvParser::Finish(const RecordFn& on_record) {
  if (!bom_checked_) {
    bom_checked_ = true;
    std::string held = std::move(bom_prefix_);
    bom_prefix_.clear();
    if (held != kBom) RETURN_IF_ERROR(Feed(held, on_record));
  }
  switch (state_) {
    case State::kQuoted:
      return errors::InvalidField(
          "csv_chunk", absl::StrCat("a quoted field opened on line ",
                                    record_.line, " is never closed"));
    case State::kQuoteInQuoted:
    case State::kUnquoted:
      EndField();
      break;
    case State::kFieldStart:
      // "a,b," ends with an empty field; an empty last line is no record.
      if (record_started_) EndField();
      break;
    case State::kAfterCr:
    case State::kSkipToEol:
      break;
  }
  EndRecord(on_record);
  return absl::OkStatus();
}

}  // namespace campaigns
