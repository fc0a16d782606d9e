// The loom-mds configuration file: a full file, defaults left unset, and errors with FILE:LINE.
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "admin/mds_config.h"

namespace loom::admin {
namespace {

class MdsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loom-mds-config-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const auto& f : files_) ::unlink(f.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }
  // The error parsing `text` from a file named bad.conf ("" when it parses).
  std::string Error(const std::string& text) {
    auto r = ParseMdsConfig(Write("bad.conf", text));
    return r.ok() ? "" : r.status().message();
  }

  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(MdsConfigTest, FullFile) {
  std::string path = Write("mds.conf",
                           "# Loom metadata server\n"
                           "\n"
                           "listen = 0.0.0.0:2049\n"
                           "state_dir = /var/lib/loom/mds   # the store\n"
                           "lease=60\n"
                           "  grace   =  30s\n"
                           "advertise = 10.0.0.5\n"
                           "pnfs = On\n"
                           "mirrors = 2\n"
                           "stripes = 3\n"
                           "stripe_unit = 64K\n"
                           "exports = exports.conf\n"
                           "stats_file = /run/loom/stats#1.json\n"
                           "ds = 10.0.0.11:2050 label=site=a label=tier=ssd\n"
                           "ds = 127.0.0.1:2051@10.0.0.12:3051\n"
                           "ds = 127.0.0.1:2052@ds3.example.org\n"
                           "ds = [::1]:2053@[fd00::3]\n"
                           "ds = storage-4:2054\r\n");
  auto r = ParseMdsConfig(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const MdsConfig& c = *r;
  EXPECT_EQ(c.listen, "0.0.0.0:2049");
  EXPECT_EQ(c.state_dir, "/var/lib/loom/mds");
  EXPECT_EQ(c.lease_seconds, 60u);
  EXPECT_EQ(c.grace_seconds, 30u);
  EXPECT_EQ(c.advertise, "10.0.0.5");
  EXPECT_EQ(c.pnfs, true);
  EXPECT_EQ(c.mirrors, 2u);
  EXPECT_EQ(c.stripes, 3u);
  EXPECT_EQ(c.stripe_unit, 65536u);
  EXPECT_EQ(c.exports, dir_ + "/exports.conf");  // relative to the file
  EXPECT_EQ(c.stats_file, "/run/loom/stats#1.json");  // '#' inside a word is not a comment
  ASSERT_EQ(c.data_servers.size(), 5u);
  EXPECT_EQ(c.data_servers[0].address, "10.0.0.11:2050");
  EXPECT_EQ(c.data_servers[0].advertised, "");
  EXPECT_EQ(c.data_servers[0].labels.size(), 2u);
  EXPECT_EQ(c.data_servers[0].labels.at("site"), "a");
  EXPECT_EQ(c.data_servers[0].labels.at("tier"), "ssd");
  EXPECT_EQ(c.data_servers[0].where, path + ":14");
  EXPECT_EQ(c.data_servers[1].address, "127.0.0.1:2051");
  EXPECT_EQ(c.data_servers[1].advertised, "10.0.0.12:3051");
  EXPECT_TRUE(c.data_servers[1].labels.empty());
  EXPECT_EQ(c.data_servers[2].advertised, "ds3.example.org:2052");  // port kept
  EXPECT_EQ(c.data_servers[3].address, "[::1]:2053");
  EXPECT_EQ(c.data_servers[3].advertised, "[fd00::3]:2053");
  EXPECT_EQ(c.data_servers[4].address, "storage-4:2054");
}

TEST_F(MdsConfigTest, UnsetKeysStayUnset) {
  auto r = ParseMdsConfig(Write("min.conf", "ds = 127.0.0.1:2050\npnfs = off\n"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->listen.has_value());
  EXPECT_FALSE(r->state_dir.has_value());
  EXPECT_FALSE(r->lease_seconds.has_value());
  EXPECT_FALSE(r->grace_seconds.has_value());
  EXPECT_FALSE(r->advertise.has_value());
  EXPECT_EQ(r->pnfs, false);
  EXPECT_FALSE(r->mirrors.has_value());
  EXPECT_FALSE(r->stripes.has_value());
  EXPECT_FALSE(r->stripe_unit.has_value());
  EXPECT_FALSE(r->exports.has_value());
  EXPECT_FALSE(r->stats_file.has_value());
  EXPECT_EQ(r->data_servers.size(), 1u);

  auto empty = ParseMdsConfig(Write("empty.conf", "# nothing\n\n   \n"));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->data_servers.empty());

  auto text = ParseMdsConfigText("state_dir = rel/dir\n", "inline");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->state_dir, "rel/dir");  // no directory to anchor it to
}

TEST_F(MdsConfigTest, ErrorsNameFileAndLine) {
  std::string where = dir_ + "/bad.conf:";
  EXPECT_EQ(Error("listen = 0.0.0.0:2049\nbogus = 1\n").rfind(where + "2: unknown key 'bogus'", 0), 0u)
      << Error("listen = 0.0.0.0:2049\nbogus = 1\n");
  EXPECT_EQ(Error("\n\nmirrors = 4\n").rfind(where + "3: mirrors:", 0), 0u);
  struct Case {
    const char* text;
    const char* want;  // a part of the message
  };
  const Case cases[] = {
      {"just words\n", ":1: expected KEY = VALUE"},
      {"= 5\n", ":1: missing key"},
      {"lease =\n", ":1: lease needs a value"},
      {"lease = 0\n", ":1: lease:"},
      {"lease = ninety\n", ":1: lease: not a number"},
      {"grace = -1\n", ":1: grace:"},
      {"mirrors = 0\n", ":1: mirrors:"},
      {"stripes = 65\n", ":1: stripes:"},
      {"stripe_unit = 0\n", ":1: stripe_unit must be more than 0"},
      {"stripe_unit = 1X\n", ":1: stripe_unit: not a size"},
      {"pnfs = maybe\n", ":1: pnfs: 'maybe' is not on or off"},
      {"listen = localhost:2049\n", ":1: listen:"},
      {"listen = 0.0.0.0\n", ":1: listen:"},
      {"listen = 0.0.0.0:2049 extra\n", ":1: listen takes one value"},
      {"state_dir = /a /b\n", ":1: state_dir takes one value"},
      {"advertise = 10.0.0.1:2049\n", ":1: advertise takes a host without a port"},
      {"advertise = bad/host\n", ":1: advertise: bad host"},
      {"mirrors = 2\nmirrors = 3\n", ":2: mirrors is given twice (first at line 1)"},
      {"ds = 10.0.0.1\n", ":1: ds: address '10.0.0.1' needs a port"},
      {"ds = 10.0.0.1:0\n", ":1: ds: port 0"},
      {"ds = 10.0.0.1:70000\n", ":1: ds: bad port"},
      {"ds = ::1:2050\n", ":1: ds: bad address"},
      {"ds = 10.0.0.1:2050@\n", ":1: ds: nothing after '@'"},
      {"ds = 10.0.0.1:2050@10.0.0.2:x\n", ":1: ds: advertised bad port"},
      {"ds = 10.0.0.1:2050 site=a\n", ":1: ds: unexpected 'site=a'"},
      {"ds = 10.0.0.1:2050 label=site\n", ":1: ds: label 'site' is not KEY=VALUE"},
      {"ds = 10.0.0.1:2050 label=a=1 label=a=2\n", ":1: ds: label a given twice"},
      {"ds = 10.0.0.1:2050\nds = 10.0.0.1:2050\n", ":2: ds 10.0.0.1:2050 is already listed at"},
  };
  for (const auto& c : cases) {
    std::string e = Error(c.text);
    EXPECT_NE(e.find(c.want), std::string::npos) << "config: " << c.text << "error: " << e;
    EXPECT_EQ(e.rfind(where, 0), 0u) << e;
  }
}

TEST_F(MdsConfigTest, MissingFile) {
  auto r = ParseMdsConfig(dir_ + "/absent.conf");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().ToString().find("absent.conf"), std::string::npos);
  EXPECT_FALSE(ParseMdsConfig(dir_).ok());  // a directory
}

TEST(SplitHostPortTest, Forms) {
  std::string h;
  uint16_t p = 0;
  ASSERT_TRUE(SplitHostPort("10.1.2.3:2049", &h, &p).ok());
  EXPECT_EQ(h, "10.1.2.3");
  EXPECT_EQ(p, 2049);
  ASSERT_TRUE(SplitHostPort("[fd00::1]:20", &h, &p).ok());
  EXPECT_EQ(h, "fd00::1");
  EXPECT_EQ(p, 20);
  ASSERT_TRUE(SplitHostPort("host-a", &h, &p, 7).ok());
  EXPECT_EQ(h, "host-a");
  EXPECT_EQ(p, 7);
  EXPECT_FALSE(SplitHostPort("host-a", &h, &p).ok());
  EXPECT_FALSE(SplitHostPort(":2049", &h, &p).ok());
  EXPECT_FALSE(SplitHostPort("[10.0.0.1]:1", &h, &p).ok());
  EXPECT_FALSE(SplitHostPort("[::1", &h, &p).ok());
  EXPECT_FALSE(SplitHostPort("a:b:c", &h, &p).ok());
}

}  // namespace
}  // namespace loom::admin
