// Rows of an audience import (recipients or contacts) read from CSV.
#include "server/domain/import_rows.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/domain/errors.h"
#include "server/domain/utf8.h"

namespace campaigns {
namespace {

constexpr absl::string_view kField = "csv_chunk";

// How well header `name` (lower-cased, trimmed) fits as the address column
// of `channel`: 0 not an address column, higher wins.
int AddressRank(absl::string_view name, Channel channel) {
  if (name == "address") return 3;
  const bool phone = name == "phone" || name == "phone_number";
  const bool email = name == "email";
  const bool chat = name == "chat_id";
  if (!phone && !email && !chat) return 0;
  const bool fits =
      (phone && IsPhoneChannel(channel)) ||
      (email && channel == Channel::kEmail) ||
      (chat && (channel == Channel::kTelegram || channel == Channel::kSlack));
  return fits ? 2 : 1;
}

// The index of the first field that is not valid UTF-8, or fields.size().
size_t FirstInvalidUtf8(const std::vector<std::string>& fields) {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (!IsValidUtf8(fields[i])) return i;
  }
  return fields.size();
}

// The index of the first field longer than `max_bytes`, or fields.size().
size_t FirstOver(const std::vector<std::string>& fields, size_t max_bytes) {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].size() > max_bytes) return i;
  }
  return fields.size();
}

}  // namespace

std::string VariablesToJson(const std::map<std::string, std::string>& vars) {
  return nlohmann::json(vars).dump(-1, ' ', false,
                                   nlohmann::json::error_handler_t::replace);
}

std::string RowErrorReason(int64_t line, absl::string_view why) {
  if (line > 0) return absl::StrCat("line ", line, ": ", why);
  return std::string(why);
}

std::string JsonRowLimitProblem(
    absl::string_view address,
    const std::map<std::string, std::string>& variables,
    const ImportRowLimits& limits) {
  if (variables.size() > limits.max_variables) {
    return absl::StrCat(variables.size(), " variables, at most ",
                        limits.max_variables);
  }
  if (address.size() > limits.max_field_bytes) {
    return absl::StrCat("the address has ", address.size(), " bytes, at most ",
                        limits.max_field_bytes);
  }
  for (const auto& [name, value] : variables) {
    if (name.size() > limits.max_name_bytes) {
      return absl::StrCat("a variable name has ", name.size(),
                          " bytes, at most ", limits.max_name_bytes);
    }
    if (value.size() > limits.max_field_bytes) {
      return absl::StrCat("variable \"", errors::Quote(name), "\" has ",
                          value.size(), " bytes, at most ",
                          limits.max_field_bytes);
    }
  }
  return "";
}

ImportRow ReadJsonRow(int64_t row, absl::string_view address,
                      absl::string_view contact_id,
                      std::map<std::string, std::string> variables,
                      const ImportRowLimits& limits) {
  ImportRow out;
  out.row = row;
  out.address = std::string(absl::StripAsciiWhitespace(address));
  out.contact_id = std::string(contact_id);
  out.variables = std::move(variables);
  if (std::string why = JsonRowLimitProblem(out.address, out.variables, limits);
      !why.empty()) {
    out.error = std::move(why);
    out.variables.clear();
  } else if (out.address.empty() && out.contact_id.empty()) {
    out.error = "the address is empty";
  } else if (out.contact_id.size() > kMaxIdLength) {
    out.error = "contact_id is too long";
  }
  return out;
}

absl::Status CsvRowReader::Feed(absl::string_view chunk,
                                std::vector<ImportRow>* out) {
  if (!fatal_.ok()) return fatal_;
  absl::Status parsed = parser_.Feed(chunk, [&](const CsvRecord& record) {
    if (fatal_.ok()) fatal_ = OnRecord(record, out);
  });
  if (!parsed.ok()) {
    fatal_ = errors::InvalidField(kField, parsed.message());
  }
  return fatal_;
}

absl::Status CsvRowReader::Finish(std::vector<ImportRow>* out) {
  if (!fatal_.ok()) return fatal_;
  absl::Status parsed = parser_.Finish([&](const CsvRecord& record) {
    if (fatal_.ok()) fatal_ = OnRecord(record, out);
  });
  if (!parsed.ok()) {
    fatal_ = errors::InvalidField(kField, parsed.message());
  } else if (fatal_.ok() && !have_header_) {
    fatal_ = errors::InvalidField(kField, "no header row: the input is empty");
  }
  return fatal_;
}

absl::Status CsvRowReader::ReadHeader(const CsvRecord& record) {
  if (!record.error.empty()) {
    return errors::InvalidField(kField,
                                absl::StrCat("header row (line ", record.line,
                                             ") is malformed: ", record.error));
  }
  if (record.fields.size() > limits_.max_columns) {
    return errors::InvalidField(
        kField, absl::StrCat("the header (line ", record.line, ") has ",
                             record.fields.size(), " columns, at most ",
                             limits_.max_columns, " (the address and ",
                             limits_.max_columns - 1, " variables)"));
  }
  int best_rank = 0;
  int best_count = 0;
  std::vector<std::string> candidates;
  columns_.reserve(record.fields.size());
  for (size_t i = 0; i < record.fields.size(); ++i) {
    if (!IsValidUtf8(record.fields[i])) {
      return errors::InvalidField(
          kField, absl::StrCat("header column ", i + 1,
                               " is not valid UTF-8 (save the file as UTF-8)"));
    }
    std::string name(absl::StripAsciiWhitespace(record.fields[i]));
    if (name.empty()) {
      return errors::InvalidField(
          kField, absl::StrCat("header column ", i + 1, " has no name"));
    }
    if (name.size() > limits_.max_name_bytes) {
      return errors::InvalidField(
          kField,
          absl::StrCat("header column ", i + 1, " has a name of ", name.size(),
                       " bytes, at most ", limits_.max_name_bytes));
    }
    const int rank = AddressRank(absl::AsciiStrToLower(name), channel_);
    if (rank > 0) candidates.push_back(name);
    if (rank > best_rank) {
      best_rank = rank;
      best_count = 1;
      address_column_ = i;
    } else if (rank > 0 && rank == best_rank) {
      ++best_count;
    }
    columns_.push_back(std::move(name));
  }
  // Sorted by name once: repeated names sit side by side, and rows build
  // their variables in order.
  std::vector<size_t> order(columns_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [this](size_t a, size_t b) {
    return columns_[a] != columns_[b] ? columns_[a] < columns_[b] : a < b;
  });
  for (size_t k = 1; k < order.size(); ++k) {
    if (columns_[order[k]] == columns_[order[k - 1]]) {
      return errors::InvalidField(
          kField, absl::StrCat("header column \"", columns_[order[k]],
                               "\" appears twice"));
    }
  }
  if (best_rank == 0) {
    return errors::InvalidField(
        kField,
        "the header has no address column: name one of address, phone, "
        "phone_number, email, chat_id");
  }
  if (best_count > 1) {
    return errors::InvalidField(
        kField, absl::StrCat("the header has several address columns (",
                             absl::StrJoin(candidates, ", "),
                             "); keep one or name it \"address\""));
  }
  variable_order_.clear();
  for (size_t i : order) {
    if (i != address_column_) variable_order_.push_back(i);
  }
  have_header_ = true;
  return absl::OkStatus();
}

absl::Status CsvRowReader::OnRecord(const CsvRecord& record,
                                    std::vector<ImportRow>* out) {
  if (!have_header_) return ReadHeader(record);
  ImportRow row;
  row.row = ++rows_;
  row.line = record.line;
  if (!record.error.empty()) {
    row.error = RowErrorReason(row.line, record.error);
  } else if (record.fields.size() > limits_.max_columns) {
    row.error = RowErrorReason(
        row.line, absl::StrCat(record.fields.size(), " columns, at most ",
                               limits_.max_columns));
  } else if (size_t big = FirstOver(record.fields, limits_.max_field_bytes);
             big < record.fields.size()) {
    row.error = RowErrorReason(
        row.line, absl::StrCat("column ",
                               big < columns_.size()
                                   ? absl::StrCat("\"", columns_[big], "\"")
                                   : absl::StrCat(big + 1),
                               " has ", record.fields[big].size(),
                               " bytes, at most ", limits_.max_field_bytes));
  } else if (record.fields.size() != columns_.size()) {
    row.error = RowErrorReason(
        row.line, absl::StrCat("has ", record.fields.size(),
                               " fields; the header has ", columns_.size()));
  } else if (size_t bad = FirstInvalidUtf8(record.fields);
             bad < record.fields.size()) {
    row.error = RowErrorReason(
        row.line, absl::StrCat("column \"", columns_[bad],
                               "\" is not valid UTF-8 (save the file as "
                               "UTF-8)"));
  } else {
    row.address =
        std::string(absl::StripAsciiWhitespace(record.fields[address_column_]));
    for (size_t i : variable_order_) {
      row.variables.emplace_hint(row.variables.end(), columns_[i],
                                 record.fields[i]);
    }
    if (row.address.empty()) {
      row.error = RowErrorReason(
          row.line, absl::StrCat("the address (column \"",
                                 columns_[address_column_], "\") is empty"));
    }
  }
  out->push_back(std::move(row));
  return absl::OkStatus();
}

}  // namespace campaigns
