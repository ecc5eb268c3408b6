#pragma once
// MNIST-format IDX files (LeCun et al.), gzipped or plain.
//
// Layout: a big-endian header -- two zero bytes, a type code (0x08 for
// unsigned bytes, the only type MNIST uses), the number of dimensions -- then
// one big-endian uint32 per dimension, then the values in row-major order.
// Images are idx3 ([n, rows, cols]), labels idx1 ([n]).
//
// A directory holds {train,t10k}-{images-idx3,labels-idx1}-ubyte, each
// optionally gzipped (the names Debian's dataset-fashion-mnist and
// yann.lecun.com use; "images.idx3-ubyte" with a dot is accepted too).
// Every malformed file -- wrong magic, truncated, trailing bytes, image and
// label counts that disagree -- is an InputError naming the file.
#include <cstdint>
#include <string>
#include <vector>

#include "training/data.hpp"

namespace gradmatch::training {

/// Debian's dataset-fashion-mnist, the default image data set.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> values;  ///< row-major
};

/// Reads an unsigned-byte IDX file (gzipped or plain); `expected_dims`
/// (> 0) is the number of dimensions the caller requires.
IdxArray read_idx(const std::string& path, int expected_dims = 0);

enum class IdxPart { train, test };

/// The image and label files of `part` in `dir` (the first candidate name that exists).
struct IdxFiles {
  std::string images;
  std::string labels;
};
IdxFiles find_idx_files(const std::string& dir, IdxPart part);

/// Images as float32 x [n, rows * cols] scaled to [0, 1] and int64 labels y [n].
Dataset load_idx(const std::string& dir, IdxPart part);

/// The dimensions an IDX file's header declares, read alone (a gzipped
/// file is decompressed only that far); InputError naming the file as
/// read_idx would.
std::vector<std::int64_t> read_idx_dims(const std::string& path, int expected_dims = 0);

/// The number of images in `dir`'s training split and, with `test`, its
/// test split, from the files' headers; InputError naming the test images
/// when their size differs from the training images'.
struct IdxCounts {
  std::int64_t train = 0;
  std::int64_t test = 0;
};
IdxCounts idx_counts(const std::string& dir, bool test);

/// The training and test splits of `dir` (load_idx of each); InputError
/// naming both image files when their images differ in size: one model
/// takes both.
struct IdxSplits {
  Dataset train, test;
};
IdxSplits load_idx_splits(const std::string& dir);

/// True when `path` is a directory holding the training files of an IDX data set.
bool is_idx_directory(const std::string& path);

}  // namespace gradmatch::training
