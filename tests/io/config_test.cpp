// ConfigReader: typed values by dotted key, and every kind of mistake in a
// config reported as FILE:LINE: key 'k': ... (unknown keys only at finish()).
#include "io/config.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <limits>

#include "core/errors.hpp"
#include "test_dir.hpp"

namespace gradmatch::io {
namespace {

using testing::TestDir;
constexpr auto kMaxInt = std::numeric_limits<std::int64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();

/// Writes `text` (minus a leading newline, so line 1 is its first line).
std::string write_config(const TestDir& dir, std::string text) {
  if (!text.empty() && text[0] == '\n') text.erase(0, 1);
  const std::string path = dir.file("study.toml");
  std::ofstream(path) << text;
  return path;
}

/// Runs `f`, expecting an InputError that starts with "PATH:LINE: " and
/// contains every word.
template <class F>
void expect_error(F&& f, const std::string& path, int line, std::initializer_list<const char*> words) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path + ":" + std::to_string(line) + ": ", 0), 0u) << msg;
    for (const char* w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
  }
}

constexpr const char* kStudy = R"(
name = "dropout"
seed = 7

[data]
n = 200
noise = 0.5
dist = "gaussian"

[train]
lr = 1e-2
rates = [0.1, 0.2, 0.5]
epochs = [10, 20]
early_stop = true
)";

TEST(ConfigReader, ReadsTypedValuesByDottedKey) {
  TestDir dir;
  ConfigReader c(write_config(dir, kStudy));
  EXPECT_EQ(c.get_string("name"), "dropout");
  EXPECT_EQ(c.get_int("seed", 0, kMaxInt), 7);
  EXPECT_EQ(c.get_int("data.n", 1, 1000), 200);
  EXPECT_EQ(c.get_double("data.noise", 0.0, kInf), 0.5);
  EXPECT_EQ(c.get_choice("data.dist", "uniform", {"gaussian", "uniform"}), "gaussian");
  EXPECT_EQ(c.get_double("train.lr", 0.0, 1.0), 1e-2);
  EXPECT_EQ(c.get_doubles("train.rates", {}, 0.0, 1.0), (std::vector<double>{0.1, 0.2, 0.5}));
  EXPECT_EQ(c.get_ints("train.epochs", {}, 1, 100), (std::vector<std::int64_t>{10, 20}));
  EXPECT_TRUE(c.get_bool("train.early_stop", false));
  EXPECT_NO_THROW(c.finish());
}

TEST(ConfigReader, AppliesFallbacksForAbsentOptionalKeys) {
  TestDir dir;
  ConfigReader c(write_config(dir, "[data]\nn = 3\n"));
  EXPECT_TRUE(c.has("data.n"));
  EXPECT_FALSE(c.has("data.m"));
  EXPECT_FALSE(c.has("train.lr"));
  EXPECT_EQ(c.get_int("data.n", 1, 10), 3);
  EXPECT_EQ(c.get_int("data.m", 5, 1, 10), 5);
  EXPECT_EQ(c.get_double("train.lr", 0.1, 0.0, 1.0), 0.1);
  EXPECT_EQ(c.get_string("train.opt", "sgd"), "sgd");
  EXPECT_EQ(c.get_choice("train.loss", "mse", {"mse", "ce"}), "mse");
  EXPECT_FALSE(c.get_bool("train.flag", false));
  EXPECT_EQ(c.get_doubles("train.rates", {0.5}, 0.0, 1.0), std::vector<double>{0.5});
  EXPECT_EQ(c.get_ints("train.epochs", {1}, 1, 9), std::vector<std::int64_t>{1});
  EXPECT_NO_THROW(c.finish());
}

TEST(ConfigReader, DefaultsListEveryDefaultedKeyWithItsFallbackWhetherOrNotTheFileSetsIt) {
  TestDir dir;
  ConfigReader c(write_config(dir, "[data]\nn = 3\nm = 7\n[train]\nflag = true\n"));
  c.get_int("data.n", 1, 10);       // required: no default
  c.get_int("data.m", 5, 1, 10);    // set in the file: its default still listed
  c.get_double("train.lr", 0.25, 0.0, 1.0);
  c.get_choice("train.loss", "mse", {"mse", "ce"});
  c.get_bool("train.flag", false);
  c.get_doubles("train.rates", {0.5, 1.0}, 0.0, 1.0);
  c.get_strings("train.names", {"a"});
  EXPECT_EQ(c.defaults(),
            "data.m = 5\ntrain.flag = false\ntrain.loss = \"mse\"\ntrain.lr = 0.25\ntrain.names = [\"a\"]\n"
            "train.rates = [0.5, 1]\n");
  EXPECT_EQ(c.effective(),
            "data.m = 7\ndata.n = 3\ntrain.flag = true\ntrain.loss = \"mse\"\ntrain.lr = 0.25\ntrain.names = [\"a\"]\n"
            "train.rates = [0.5, 1]\n");
}

TEST(ConfigReader, DefaultsGiveWhatGradmatchDidBeforeAKeyWhoseDefaultChangedBehaviour) {
  TestDir dir;
  ConfigReader c(write_config(dir, "[train]\nsplit = \"rows\"\n"));
  c.get_choice("train.split", "rows", {"rows", "draws"});
  c.key_existed_since("train.split", "draws");
  c.get_bool("train.original", true);
  c.key_existed_since("train.original", false);
  c.get_int("train.epochs", 3, 1, 9);
  c.get_int("train.shuffles", 10, 0, 99);
  c.key_existed_since("train.shuffles", std::int64_t{0});
  EXPECT_EQ(c.defaults(), "train.epochs = 3\ntrain.original = false\ntrain.shuffles = 0\ntrain.split = \"draws\"\n");
  EXPECT_EQ(c.effective(), "train.epochs = 3\ntrain.original = true\ntrain.shuffles = 10\ntrain.split = \"rows\"\n");
}

TEST(ConfigReader, AcceptsIntegerWhereNumberExpected) {
  TestDir dir;
  ConfigReader c(write_config(dir, "lr = 1\nrates = [0, 0.5, 1]\n"));
  EXPECT_EQ(c.get_double("lr", 0.0, 2.0), 1.0);
  EXPECT_EQ(c.get_doubles("rates", {}, 0.0, 1.0), (std::vector<double>{0, 0.5, 1}));
}

TEST(ConfigReader, KeepsTheFileText) {
  TestDir dir;
  ConfigReader c(write_config(dir, kStudy));
  EXPECT_EQ(c.text().rfind("name = \"dropout\"\n", 0), 0u);
  EXPECT_EQ(c.path(), dir.file("study.toml"));
}

TEST(ConfigReader, RejectsUnknownKeyWithFileAndLine) {
  TestDir dir;
  const std::string path = write_config(dir, kStudy);
  ConfigReader c(path);
  c.get_string("name");
  c.get_int("seed", 0, kMaxInt);
  c.get_int("data.n", 1, 1000);
  c.get_double("data.noise", 0.0, 1.0);
  c.get_string("data.dist");
  // train.* was never asked for: the whole table is unknown.
  expect_error([&] { c.finish(); }, path, 9, {"key 'train'", "unknown table"});
}

TEST(ConfigReader, RejectsUnreadKeyInsideEnteredTable) {
  TestDir dir;
  const std::string path = write_config(dir, "[data]\nn = 1\nnoize = 0.5\n");
  ConfigReader c(path);
  c.get_int("data.n", 1, 10);
  c.get_double("data.noise", 0.1, 0.0, 1.0);
  expect_error([&] { c.finish(); }, path, 3, {"key 'data.noize'", "unknown key", "did you mean 'data.noise'"});
}

TEST(ConfigReader, RejectsUnknownKeyInDottedAndInlineTables) {
  TestDir dir;
  const std::string path = write_config(dir, "model.width = 3\nmodel.depht = 2\nopt = { lr = 0.1, momentun = 0.9 }\n");
  ConfigReader c(path);
  c.get_int("model.width", 1, 10);
  c.get_int("model.depth", 1, 1, 10);
  c.get_double("opt.lr", 0.0, 1.0);
  expect_error([&] { c.finish(); }, path, 2, {"key 'model.depht'", "did you mean 'model.depth'"});
  c.get_int("model.depht", 1, 10);
  expect_error([&] { c.finish(); }, path, 3, {"key 'opt.momentun'", "unknown key", "known here: lr"});
}

TEST(ConfigReader, RejectsAQuotedKeyHoldingADotRatherThanReadTheDefaultOfTheKeyItSpells) {
  TestDir dir;
  const std::string path = write_config(dir, "seed = 1\n\"data.n\" = 5\n[model]\n\"opt.lr\" = 0.5\n");
  ConfigReader c(path);
  c.get_int("seed", 0, 10);
  EXPECT_EQ(c.get_int("data.n", 1000, 2, 10000), 1000);  // the quoted key is not data.n
  expect_error([&] { c.finish(); }, path, 2,
               {"key 'data.n'", "a quoted key holding a dot is one key named \"data.n\"",
                "write data.n = ... without the quotes"});
  const std::string in_table = write_config(dir, "[model]\n\"opt.lr\" = 0.5\n");
  ConfigReader t(in_table);
  t.get_double("model.opt.lr", 0.1, 0.0, 1.0);
  expect_error([&] { t.finish(); }, in_table, 2, {"key 'model.opt.lr'", "write opt.lr = ... without the quotes"});
}

TEST(ConfigReader, RejectsStringWhereNumberExpected) {
  TestDir dir;
  const std::string path = write_config(dir, "[data]\nn = \"ten\"\n");
  ConfigReader c(path);
  expect_error([&] { c.get_int("data.n", 1, 100); }, path, 2,
               {"key 'data.n'", "the string \"ten\"", "an integer in [1, 100]"});
  expect_error([&] { c.get_double("data.n", 0.0, 1.0); }, path, 2, {"key 'data.n'", "a number in [0, 1]"});
}

TEST(ConfigReader, RejectsFloatWhereIntegerExpected) {
  TestDir dir;
  const std::string path = write_config(dir, "# epochs\n\nepochs = 10.0\n");
  ConfigReader c(path);
  expect_error([&] { c.get_int("epochs", 1, 1, kMaxInt); }, path, 3,
               {"key 'epochs'", "the float 10.0", "an integer >= 1", "no decimal point"});
}

TEST(ConfigReader, RejectsWrongTypeOfBoolStringAndArray) {
  TestDir dir;
  const std::string path = write_config(dir, "flag = 1\nname = 2\nrates = 0.5\nepochs = [1, 2.5]\n");
  ConfigReader c(path);
  expect_error([&] { c.get_bool("flag", false); }, path, 1, {"key 'flag'", "true or false"});
  expect_error([&] { c.get_string("name"); }, path, 2, {"key 'name'", "a quoted string"});
  expect_error([&] { c.get_doubles("rates", {}, 0.0, 1.0); }, path, 3, {"key 'rates'", "an array of numbers"});
  expect_error([&] { c.get_ints("epochs", {}, 1, 9); }, path, 4, {"key 'epochs'", "element 1", "the float 2.5"});
}

TEST(ConfigReader, RejectsOutOfRangeValues) {
  TestDir dir;
  const std::string path = write_config(dir, "n = 0\nrate = 1.5\nrates = [0.5,\n  -0.1]\nlr = inf\n");
  ConfigReader c(path);
  expect_error([&] { c.get_int("n", 1, 100); }, path, 1, {"key 'n'", "value 0 is out of range", "[1, 100]"});
  expect_error([&] { c.get_double("rate", 0.0, 1.0); }, path, 2, {"key 'rate'", "1.5", "out of range", "[0, 1]"});
  expect_error([&] { c.get_doubles("rates", {}, 0.0, 1.0); }, path, 4, {"key 'rates'", "element 1", "-0.1"});
  expect_error([&] { c.get_double("lr", 0.0, kInf); }, path, 5, {"key 'lr'", "not finite", "a number >= 0"});
}

TEST(ConfigReader, RejectsChoiceOutsideTheList) {
  TestDir dir;
  const std::string path = write_config(dir, "[train]\nloss = \"hinge\"\n");
  ConfigReader c(path);
  expect_error([&] { c.get_choice("train.loss", "mse", {"mse", "ce"}); }, path, 2,
               {"key 'train.loss'", "\"hinge\"", "one of \"mse\", \"ce\""});
}

TEST(ConfigReader, RejectsMissingRequiredKey) {
  TestDir dir;
  const std::string path = write_config(dir, "seed = 1\n\n[data]\nnoise = 0.1\n");
  ConfigReader c(path);
  expect_error([&] { c.get_int("data.n", 1, 100); }, path, 3,
               {"key 'data.n'", "missing", "add n = <an integer in [1, 100]> under [data]"});
  expect_error([&] { c.get_string("name"); }, path, 1, {"key 'name'", "missing", "at the top level"});
}

TEST(ConfigReader, RejectsScalarWhereTableExpected) {
  TestDir dir;
  const std::string path = write_config(dir, "data = 5\n");
  ConfigReader c(path);
  expect_error([&] { c.get_int("data.n", 1, 1, 10); }, path, 1, {"key 'data'", "needs it to be a table"});
}

TEST(ConfigReader, RejectsSyntaxErrorWithFileAndLine) {
  TestDir dir;
  const std::string path = write_config(dir, "a = 1\n[data]\nn = = 3\n");
  expect_error([&] { ConfigReader c(path); }, path, 3, {"syntax error"});
}

TEST(ConfigReader, RejectsDuplicateKeyAsSyntaxError) {
  TestDir dir;
  const std::string path = write_config(dir, "n = 1\nn = 2\n");
  expect_error([&] { ConfigReader c(path); }, path, 2, {"syntax error"});
}

TEST(ConfigReader, RejectsMissingFile) {
  TestDir dir;
  try {
    ConfigReader c(dir.file("none.toml"));
    FAIL() << "missing file accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(dir.file("none.toml") + ": ", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace gradmatch::io
