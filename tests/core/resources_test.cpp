#include "core/resources.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <limits>
#include <string>

#include "core/text.hpp"

namespace gradmatch::resources {
namespace {

TEST(Resources, SizesReadInPowersOfAThousand) {
  EXPECT_EQ(bytes_text(12), "12 B");
  EXPECT_EQ(bytes_text(312e3), "312 kB");
  EXPECT_EQ(bytes_text(1.5e9), "1.5 GB");
  EXPECT_EQ(bytes_text(8e15), "8 PB");     // [1e9, 1e6] float64
  EXPECT_EQ(bytes_text(1.6e16), "16 PB");  // two such datasets
  EXPECT_EQ(count_text(784), "784");
  EXPECT_EQ(count_text(1e9), "1e9");
  EXPECT_EQ(count_text(4e9), "4e9");
  EXPECT_EQ(count_text(2.5e7), "2.5e7");
}

TEST(Resources, CheckedProductRefusesWhatOverflows64Bits) {
  EXPECT_EQ(checked_product({4000000000, 28, 28}, "f"), 3136000000000);
  EXPECT_EQ(checked_product({0, std::numeric_limits<std::int64_t>::max()}, "f"), 0);
  try {
    checked_product({4294967295, 4294967295, 4294967295}, "images.idx");
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              "images.idx: the product of the declared sizes 4294967295 x 4294967295 x 4294967295 overflows 64 bits; "
              "the header is corrupt");
  }
  EXPECT_THROW(checked_product({-1, 3}, "f"), InputError);
}

TEST(Resources, MemoryBeyondWhatIsAvailableIsRefusedNamingBothSizesAndTheOverride) {
  ::setenv("GRADMATCH_MEMORY_AVAILABLE", "2e9", 1);
  EXPECT_EQ(available_memory(), 2e9);
  EXPECT_NO_THROW(require_memory("x", 1.9e9, "lower n"));
  try {
    require_memory("eq.h5 declares 1e9 x 1e6 float64 in 2 datasets, which", 1.6e16, "fit fewer points");
    ADD_FAILURE();
  } catch (const ResourceError& e) {
    EXPECT_EQ(std::string(e.what()),
              "eq.h5 declares 1e9 x 1e6 float64 in 2 datasets, which needs 16 PB of memory; this machine has 2 GB "
              "available (MemAvailable); fit fewer points, or pass --ignore-resource-check to try anyway");
  }
  set_resource_check(false);
  EXPECT_NO_THROW(require_memory("x", 1e30, "y"));
  set_resource_check(true);
  ::unsetenv("GRADMATCH_MEMORY_AVAILABLE");
  const auto real = available_memory();  // /proc/meminfo's MemAvailable
  ASSERT_TRUE(real.has_value());
  EXPECT_GT(*real, 1e6);
}

TEST(Resources, DiskBeyondTheFreeSpaceOfTheFolderIsRefused) {
  ::setenv("GRADMATCH_DISK_AVAILABLE", "1000", 1);
  try {
    require_disk("cfg.toml: the run store", 5000, "/tmp/out", "lower the pools");
    ADD_FAILURE();
  } catch (const ResourceError& e) {
    EXPECT_EQ(std::string(e.what()),
              "cfg.toml: the run store needs 5 kB of disk; /tmp/out has 1 kB free; lower the pools, or pass "
              "--ignore-resource-check to try anyway");
  }
  ::unsetenv("GRADMATCH_DISK_AVAILABLE");
  // A folder that does not exist yet: the space of its nearest existing parent.
  const auto free_here = available_disk("/tmp/gradmatch_no_such_dir/a/b");
  ASSERT_TRUE(free_here.has_value());
  EXPECT_GT(*free_here, 0.0);
}

TEST(Text, ClipShortensLongValuesAndSaysHowLongTheyWere) {
  EXPECT_EQ(text::clip("short"), "short");
  EXPECT_EQ(text::clip(std::string(100, 'x'), 10), "xxxxxxxxxx... (100 characters)");
  EXPECT_EQ(text::closest("fitt", {"fit", "run", "studies", "report"}), "fit");
  EXPECT_EQ(text::closest("xyzzy", {"fit", "run", "studies", "report"}), "");
}

}  // namespace
}  // namespace gradmatch::resources
