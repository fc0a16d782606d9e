// The command registry (longest match, help, unknown commands) and the argument helpers.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "admin/commands.h"

namespace loom::admin {
namespace {

using Args = std::vector<std::string>;

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto rec = [this](const std::string& name) {
      return [this, name](const Args& args) {
        std::string s = name;
        for (const auto& a : args) s += "|" + a;
        last_ = s;
        return Ok(s + "\n");
      };
    };
    cmds_.Add("ds list", "ds list", true, rec("ds list"));
    cmds_.Add("ds add", "ds add HOST:PORT[@ADV] [--label k=v]...", false, rec("ds add"));
    cmds_.Add("ds", "ds ID", true, rec("ds"));  // a shorter name beside longer ones
    cmds_.Add("layout", "layout PATH", true, rec("layout"));
    cmds_.Add("policy  set", "policy set PATH [--mirrors N]", false, rec("policy set"));
  }
  AdminReply Run(const Args& argv) { return cmds_.Dispatch(rpc::CallContext(), argv); }

  AdminCommands cmds_;
  std::string last_;
};

TEST_F(CommandsTest, LongestNameWins) {
  EXPECT_EQ(Run({"ds", "list"}).output, "ds list\n");
  EXPECT_EQ(Run({"ds", "list", "-v", "x"}).output, "ds list|-v|x\n");
  EXPECT_EQ(Run({"ds", "add", "1.2.3.4:5", "--label", "a=b"}).output,
            "ds add|1.2.3.4:5|--label|a=b\n");
  EXPECT_EQ(Run({"ds", "7"}).output, "ds|7\n");
  EXPECT_EQ(Run({"ds"}).output, "ds\n");
  // Extra spaces in a name do not matter.
  EXPECT_EQ(Run({"policy", "set", "/x"}).output, "policy set|/x\n");
  EXPECT_EQ(Run({"layout", "/a b"}).output, "layout|/a b\n");
}

TEST_F(CommandsTest, HelpListsUsages) {
  AdminReply r = Run({"help"});
  EXPECT_EQ(r.status, kAdminOk);
  EXPECT_EQ(r.output,
            "usage:\n"
            "  ds ID\n"
            "  ds add HOST:PORT[@ADV] [--label k=v]...\n"
            "  ds list\n"
            "  layout PATH\n"
            "  policy set PATH [--mirrors N]\n"
            "  help [COMMAND]\n");
  r = Run({"help", "policy"});
  EXPECT_EQ(r.status, kAdminOk);
  EXPECT_EQ(r.output, "usage:\n  policy set PATH [--mirrors N]\n  help [COMMAND]\n");
  r = Run({"help", "nothing"});
  EXPECT_EQ(r.status, kAdminUsage);
  EXPECT_NE(r.output.find("no command 'nothing'"), std::string::npos);
  EXPECT_TRUE(last_.empty());
}

TEST_F(CommandsTest, UnknownCommandIsUsage) {
  AdminReply r = Run({"frobnicate", "now"});
  EXPECT_EQ(r.status, kAdminUsage);
  EXPECT_NE(r.output.find("unknown command 'frobnicate now'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("layout PATH"), std::string::npos);
  // A known group with an unknown rest lists the group only.
  r = Run({"policy", "get", "/x"});
  EXPECT_EQ(r.status, kAdminUsage);
  EXPECT_NE(r.output.find("policy set PATH"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("layout PATH"), std::string::npos) << r.output;
  r = Run({});
  EXPECT_EQ(r.status, kAdminUsage);
  EXPECT_NE(r.output.find("no command given"), std::string::npos);
  EXPECT_TRUE(last_.empty());
}

TEST_F(CommandsTest, UsageErrorsGetTheUsageLine) {
  cmds_.Add("mv-data", "mv-data PATH --to ID[,ID...]", false,
            [](const Args& args) { return args.empty() ? UsageError() : UsageError("bad id"); });
  AdminReply r = Run({"mv-data"});
  EXPECT_EQ(r.status, kAdminUsage);
  EXPECT_EQ(r.output, "usage: mv-data PATH --to ID[,ID...]\n");
  r = Run({"mv-data", "/x"});
  EXPECT_EQ(r.output, "bad id\nusage: mv-data PATH --to ID[,ID...]\n");
  // Adding a name again replaces the command.
  cmds_.Add("mv-data", "mv-data PATH", false, [](const Args&) { return Ok("moved\n"); });
  EXPECT_EQ(Run({"mv-data", "/x"}).output, "moved\n");
}

TEST_F(CommandsTest, ReadOnlyFlags) {
  EXPECT_TRUE(cmds_.IsReadOnly({"ds", "list"}));
  EXPECT_TRUE(cmds_.IsReadOnly({"ds", "3"}));
  EXPECT_FALSE(cmds_.IsReadOnly({"ds", "add", "x:1"}));
  EXPECT_FALSE(cmds_.IsReadOnly({"policy", "set", "/"}));
  EXPECT_TRUE(cmds_.IsReadOnly({"help"}));
  EXPECT_TRUE(cmds_.IsReadOnly({"unknown"}));
  EXPECT_TRUE(cmds_.IsReadOnly({}));
}

TEST(ParseFlagsTest, ValuesSwitchesAndPositionals) {
  auto p = ParseFlags({"/a", "--mirrors", "2", "--label", "site=x", "--label=tier=ssd", "--force",
                       "--", "--not-a-flag"},
                      {"mirrors", "label"}, {"force"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->positional, (Args{"/a", "--not-a-flag"}));
  EXPECT_EQ(p->Get("mirrors"), "2");
  EXPECT_EQ(p->All("label"), (Args{"site=x", "tier=ssd"}));
  EXPECT_TRUE(p->Has("force"));
  EXPECT_FALSE(p->Has("stripes"));
  EXPECT_FALSE(p->Get("stripes").has_value());
  EXPECT_TRUE(p->All("stripes").empty());
  auto labels = p->GetLabels();
  ASSERT_TRUE(labels.ok());
  EXPECT_EQ(labels->size(), 2u);
  EXPECT_EQ(labels->at("site"), "x");
  EXPECT_EQ(labels->at("tier"), "ssd");
  auto m = p->GetUint("mirrors", 1, 3);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->value(), 2u);
  auto none = p->GetUint("stripes", 1, 3);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_FALSE(p->GetUint("mirrors", 3, 4).ok());

  EXPECT_FALSE(ParseFlags({"--bogus"}, {"mirrors"}).ok());
  EXPECT_FALSE(ParseFlags({"-x"}, {"mirrors"}).ok());
  EXPECT_FALSE(ParseFlags({"--mirrors"}, {"mirrors"}).ok());
  EXPECT_FALSE(ParseFlags({"--force=1"}, {}, {"force"}).ok());
  auto dash = ParseFlags({"-"}, {});
  ASSERT_TRUE(dash.ok());
  EXPECT_EQ(dash->positional, Args{"-"});
  // Repeated value flags: Get is the last.
  auto rep = ParseFlags({"--to", "1,2", "--to", "3"}, {"to"});
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->Get("to"), "3");
  auto ids = rep->GetIds("to");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<uint32_t>{1, 2, 3}));
  auto dup = ParseFlags({"--to", "1,2", "--to", "2"}, {"to"});
  EXPECT_FALSE(dup->GetIds("to").ok());
  auto duplabel = ParseFlags({"--label", "a=1", "--label", "a=2"}, {"label"});
  EXPECT_FALSE(duplabel->GetLabels().ok());
  auto size = ParseFlags({"--stripe-unit", "64K"}, {"stripe-unit"});
  EXPECT_EQ(size->GetSize("stripe-unit")->value(), 65536u);
  auto badsize = ParseFlags({"--stripe-unit", "64Q"}, {"stripe-unit"});
  EXPECT_FALSE(badsize->GetSize("stripe-unit").ok());
}

TEST(ParseValuesTest, Numbers) {
  EXPECT_EQ(*ParseUint("0"), 0u);
  EXPECT_EQ(*ParseUint("18446744073709551615"), UINT64_MAX);
  EXPECT_FALSE(ParseUint("18446744073709551616").ok());
  EXPECT_FALSE(ParseUint("").ok());
  EXPECT_FALSE(ParseUint("-1").ok());
  EXPECT_FALSE(ParseUint("1 ").ok());
  EXPECT_FALSE(ParseUint("0x10").ok());
  EXPECT_FALSE(ParseUint("4", 5, 9).ok());
  EXPECT_EQ(*ParseUint("9", 5, 9), 9u);
}

TEST(ParseValuesTest, Sizes) {
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("4096B"), 4096u);
  EXPECT_EQ(*ParseSize("64K"), 64u << 10);
  EXPECT_EQ(*ParseSize("64k"), 64u << 10);
  EXPECT_EQ(*ParseSize("1M"), 1u << 20);
  EXPECT_EQ(*ParseSize("1MiB"), 1u << 20);
  EXPECT_EQ(*ParseSize("2G"), 2ull << 30);
  EXPECT_EQ(*ParseSize("3T"), 3ull << 40);
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("M").ok());
  EXPECT_FALSE(ParseSize("1.5M").ok());
  EXPECT_FALSE(ParseSize("1MM").ok());
  EXPECT_FALSE(ParseSize("1P").ok());
  EXPECT_FALSE(ParseSize("-1K").ok());
  EXPECT_FALSE(ParseSize("16777216T").ok());  // 2^64
  EXPECT_EQ(*ParseSize("16777215T"), 16777215ull << 40);
}

TEST(ParseValuesTest, LabelsAndIds) {
  auto l = ParseLabel("site=rack-1.a");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->first, "site");
  EXPECT_EQ(l->second, "rack-1.a");
  EXPECT_EQ(ParseLabel("k=")->second, "");
  EXPECT_EQ(ParseLabel("k=a=b")->second, "a=b");
  EXPECT_FALSE(ParseLabel("nokey").ok());
  EXPECT_FALSE(ParseLabel("=v").ok());
  EXPECT_FALSE(ParseLabel("a b=v").ok());
  EXPECT_FALSE(ParseLabel("k=a b").ok());
  EXPECT_FALSE(ParseLabel("k=a,b").ok());
  EXPECT_FALSE(ParseLabel(std::string(65, 'k') + "=v").ok());

  EXPECT_EQ(*ParseIdList("3"), (std::vector<uint32_t>{3}));
  EXPECT_EQ(*ParseIdList("1,2,10"), (std::vector<uint32_t>{1, 2, 10}));
  EXPECT_FALSE(ParseIdList("").ok());
  EXPECT_FALSE(ParseIdList("1,").ok());
  EXPECT_FALSE(ParseIdList(",1").ok());
  EXPECT_FALSE(ParseIdList("1,,2").ok());
  EXPECT_FALSE(ParseIdList("0").ok());
  EXPECT_FALSE(ParseIdList("4294967296").ok());
  EXPECT_FALSE(ParseIdList("1,1").ok());
  EXPECT_FALSE(ParseIdList("a").ok());
}

TEST(ParseValuesTest, FromStatus) {
  EXPECT_EQ(FromStatus(Status::Ok(), "done\n").output, "done\n");
  EXPECT_EQ(FromStatus(Status::Ok()).status, kAdminOk);
  AdminReply r = FromStatus(Status::NotFound("no data server 9"));
  EXPECT_EQ(r.status, kAdminFailed);
  EXPECT_EQ(r.output, "no data server 9\n");
  EXPECT_EQ(FromStatus(Status::Invalid("bad")).status, kAdminUsage);
}

}  // namespace
}  // namespace loom::admin
