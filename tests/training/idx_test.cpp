// IDX reader: Debian's Fashion-MNIST, and malformed files (gzipped and
// plain) rejected with errors that name the file.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/errors.hpp"
#include "test_support.hpp"
#include "training/idx.hpp"
#include "../required_inputs.hpp"

namespace gradmatch::training {
namespace {

using testing::TempDir;

std::vector<std::uint8_t> idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims, std::size_t values) {
  std::vector<std::uint8_t> b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
  for (std::size_t i = 0; i < values; ++i) b.push_back(static_cast<std::uint8_t>(i % 10));
  return b;
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
}

// Expects read/load to throw an InputError whose message names `file` and contains `what`.
template <class F>
void expect_error(F&& f, const std::string& file, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << "no error for " << file;
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST(Idx, ReadsDebiansFashionMnist) {
  const std::string dir = kFashionMnistDir;
  GRADMATCH_NEEDS_FASHION_MNIST();
  const IdxArray images = read_idx(dir + "/train-images-idx3-ubyte.gz", 3);
  EXPECT_EQ(images.dims, (std::vector<std::int64_t>{60000, 28, 28}));
  const Dataset train = load_idx(dir, IdxPart::train);
  EXPECT_EQ(train.x.sizes(), (at::IntArrayRef{60000, 784}));
  EXPECT_EQ(train.y.sizes(), (at::IntArrayRef{60000}));
  EXPECT_EQ(train.x.scalar_type(), at::kFloat);
  EXPECT_EQ(train.y.min().item<std::int64_t>(), 0);
  EXPECT_EQ(train.y.max().item<std::int64_t>(), 9);
  EXPECT_GE(train.x.min().item<float>(), 0.0f);
  EXPECT_LE(train.x.max().item<float>(), 1.0f);
  // Balanced classes: 6000 each.
  EXPECT_EQ(at::bincount(train.y).min().item<std::int64_t>(), 6000);
  const Dataset test = load_idx(dir, IdxPart::test);
  EXPECT_EQ(test.size(), 10000);
}

class IdxBadFiles : public ::testing::TestWithParam<bool> {};  // gzipped or plain

TEST_P(IdxBadFiles, AreErrorsNamingTheFile) {
  const bool gz = GetParam();
  const std::string ext = gz ? ".gz" : "";
  TempDir dir;
  const std::string images = dir.file("train-images-idx3-ubyte" + ext);
  const std::string labels = dir.file("train-labels-idx1-ubyte" + ext);

  // A good pair reads back.
  write_file(images, idx_bytes(0x08, {5, 2, 3}, 30), gz);
  write_file(labels, idx_bytes(0x08, {5}, 5), gz);
  const Dataset ok = load_idx(dir.path().string(), IdxPart::train);
  EXPECT_EQ(ok.x.sizes(), (at::IntArrayRef{5, 6}));
  EXPECT_NEAR(ok.x[0][1].item<float>(), 1.0f / 255.0f, 1e-9);
  EXPECT_EQ(ok.y[4].item<std::int64_t>(), 4);

  // Wrong magic: labels where images belong, and a float (0x0D) file.
  write_file(images, idx_bytes(0x08, {5}, 5), gz);
  expect_error([&] { load_idx(dir.path().string(), IdxPart::train); }, images, "wrong magic number 0x00000801");
  write_file(images, idx_bytes(0x0D, {5, 2, 3}, 30), gz);
  expect_error([&] { read_idx(images, 3); }, images, "wrong magic number 0x00000d03");

  // Truncated: in the header and in the data.
  std::vector<std::uint8_t> short_header = idx_bytes(0x08, {5, 2, 3}, 0);
  short_header.resize(9);
  write_file(images, short_header, gz);
  expect_error([&] { read_idx(images, 3); }, images, "truncated");
  write_file(images, idx_bytes(0x08, {5, 2, 3}, 29), gz);
  expect_error([&] { read_idx(images, 3); }, images, "declares 5 x 2 x 3 = 30 values but the file holds 29");

  // Trailing bytes.
  write_file(images, idx_bytes(0x08, {5, 2, 3}, 31), gz);
  expect_error([&] { read_idx(images, 3); }, images, "trailing");

  // Image and label counts disagree: the error names both files.
  write_file(images, idx_bytes(0x08, {4, 2, 3}, 24), gz);
  expect_error([&] { load_idx(dir.path().string(), IdxPart::train); }, labels, "holds 5 labels but " + images + " holds 4 images");

  // A missing file names the directory.
  std::filesystem::remove(labels);
  expect_error([&] { load_idx(dir.path().string(), IdxPart::train); }, dir.path().string(), "train-labels-idx1-ubyte");
}

TEST(Idx, AHeaderDeclaringMoreThanTheFileHoldsIsRefusedBeforeAllocating) {
  TempDir dir;
  // 4e9 images of 28 x 28 (3.1 TB) in a 116-byte file: truncated, found from the size.
  const std::string path = dir.file("train-images-idx3-ubyte");
  std::vector<std::uint8_t> bytes{0, 0, 8, 3, 0xEE, 0x6B, 0x28, 0x00, 0, 0, 0, 28, 0, 0, 0, 28};
  bytes.resize(bytes.size() + 100, 0);
  write_file(path, bytes, false);
  expect_error([&] { read_idx(path, 3); }, path,
               "is truncated: the header declares 4000000000 x 28 x 28 = 3136000000000 values but the file holds 100 "
               "bytes of data");
  // Dimensions whose product overflows 64 bits.
  bytes = {0, 0, 8, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3};
  write_file(path, bytes, false);
  expect_error([&] { read_idx(path, 3); }, path, "overflows 64 bits; the header is corrupt");
}

INSTANTIATE_TEST_SUITE_P(GzippedAndPlain, IdxBadFiles, ::testing::Bool(),
                         [](const auto& instance) { return instance.param ? std::string("gzip") : std::string("plain"); });

TEST(Idx, CorruptGzipStreamIsAnErrorNamingTheFile) {
  TempDir dir;
  const std::string path = dir.file("t.gz");
  write_file(path, idx_bytes(0x08, {4000}, 4000), true);
  // Cut the compressed stream in half.
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  expect_error([&] { read_idx(path, 1); }, path, "");
}

}  // namespace
}  // namespace gradmatch::training
