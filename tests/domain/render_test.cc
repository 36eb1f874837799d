#include "server/domain/render.h"

#include <gtest/gtest.h>

namespace campaigns {
namespace {

TEST(RenderTest, PlaceholdersByNameOrThroughTheMapping) {
  MessageTemplate t = MessageTemplate::Parse(
      "Hi {{ name }}, code {{1}}. {{}} stays", {{"1", "code"}});
  RenderResult r = t.Render({{"name", "Ada"}, {"code", "X7"}});
  EXPECT_EQ(r.missing, "");
  EXPECT_EQ(r.text, "Hi Ada, code X7. {{}} stays");
  EXPECT_EQ(t.Variables(), (std::vector<std::string>{"name", "code"}));
}

TEST(RenderTest, AMissingVariableIsNamedAndNothingIsRendered) {
  MessageTemplate t = MessageTemplate::Parse("Hi {{name}} {{city}}", {});
  RenderResult r = t.Render({{"name", "Ada"}});
  EXPECT_EQ(r.missing, "city");
  EXPECT_EQ(r.text, "");
}

TEST(RenderTest, TextWithoutPlaceholdersAndUnclosedBraces) {
  EXPECT_EQ(MessageTemplate::Parse("plain", {}).Render({}).text, "plain");
  EXPECT_EQ(MessageTemplate::Parse("a {{b", {}).Render({}).text, "a {{b");
  EXPECT_EQ(MessageTemplate::Parse("", {}).Render({}).text, "");
}

}  // namespace
}  // namespace campaigns
