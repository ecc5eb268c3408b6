#include "training/idx.hpp"

#include <ATen/ATen.h>
#include <zlib.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/errors.hpp"
#include "core/resources.hpp"

namespace gradmatch::training {
namespace {

namespace fs = std::filesystem;

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

[[noreturn]] void bad_file(const std::string& path, const std::string& what) {
  std::string msg = path;
  msg += ": ";
  msg += what;
  throw InputError(msg);
}

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzHandle = std::unique_ptr<gzFile_s, GzCloser>;

// Reads exactly `size` bytes (or reports how many there were).
std::size_t read_bytes(gzFile f, const std::string& path, std::uint8_t* out, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const std::size_t chunk = std::min<std::size_t>(size - done, std::size_t{1} << 30);
    const int got = gzread(f, out + done, static_cast<unsigned>(chunk));
    if (got < 0) {
      int code = 0;
      const char* why = gzerror(f, &code);
      std::string msg = "is corrupt or truncated (zlib: ";
      msg += why ? why : "read error";
      msg += ")";
      bad_file(path, msg);
    }
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  // A gzip stream that ends early reports it through gzerror after a short read.
  int code = Z_OK;
  const char* why = gzerror(f, &code);
  if (code != Z_OK && code != Z_STREAM_END) {
    std::string msg = "is corrupt or truncated (zlib: ";
    msg += why ? why : "read error";
    msg += ")";
    bad_file(path, msg);
  }
  return done;
}

std::uint32_t big_endian(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

std::string first_existing(const std::string& dir, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    for (const char* suffix : {"", ".gz"}) {
      const fs::path p = fs::path(dir) / (name + suffix);
      std::error_code ec;
      if (fs::is_regular_file(p, ec)) return p.string();
    }
  }
  return {};
}

GzHandle open_idx(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) bad_file(path, "does not exist or is not a file");
  GzHandle f(gzopen(path.c_str(), "rb"));
  if (!f) bad_file(path, "cannot be opened");
  return f;
}

/// The magic number and the dimensions; `header_bytes` receives the bytes read.
std::vector<std::int64_t> read_dims(gzFile f, const std::string& path, int expected_dims, std::size_t& header_bytes) {
  std::array<std::uint8_t, 4> magic{};
  if (read_bytes(f, path, magic.data(), 4) != 4) bad_file(path, "is truncated: shorter than the 4-byte IDX magic number");
  const std::uint32_t magic_value = big_endian(magic.data());
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] == 0 ||
      (expected_dims > 0 && magic[3] != expected_dims)) {
    std::string msg = "wrong magic number ";
    msg += hex32(magic_value);
    if (expected_dims > 0) {
      msg += " (expected ";
      msg += hex32(0x0800u | static_cast<std::uint32_t>(expected_dims));
      msg += ": an idx";
      msg += std::to_string(expected_dims);
      msg += " unsigned-byte file)";
    } else {
      msg += " (expected 0x000008NN: an unsigned-byte IDX file)";
    }
    bad_file(path, msg);
  }
  std::vector<std::uint8_t> header(4 * std::size_t{magic[3]});
  if (read_bytes(f, path, header.data(), header.size()) != header.size())
    bad_file(path, "is truncated: the dimension header ends early");
  std::vector<std::int64_t> dims;
  for (std::size_t d = 0; d < magic[3]; ++d) dims.push_back(big_endian(header.data() + 4 * d));
  header_bytes = 4 + header.size();
  return dims;
}

}  // namespace

std::vector<std::int64_t> read_idx_dims(const std::string& path, int expected_dims) {
  const GzHandle f = open_idx(path);
  std::size_t header_bytes = 0;
  return read_dims(f.get(), path, expected_dims, header_bytes);
}

IdxArray read_idx(const std::string& path, int expected_dims) {
  std::error_code ec;
  const GzHandle f = open_idx(path);
  IdxArray out;
  std::size_t header_bytes = 0;
  out.dims = read_dims(f.get(), path, expected_dims, header_bytes);
  const std::int64_t declared = resources::checked_product(out.dims, path);
  const auto count = static_cast<std::size_t>(declared);
  std::string shape;
  for (const std::int64_t d : out.dims) shape += (shape.empty() ? "" : " x ") + std::to_string(d);
  // A plain file's size says at once whether the declared values are there:
  // a truncated or padded file is refused before anything is allocated.
  const bool gzipped = gzdirect(f.get()) == 0;
  if (!gzipped) {
    const auto bytes = static_cast<std::uint64_t>(fs::file_size(path, ec));
    const std::uint64_t data_bytes = bytes - std::min<std::uint64_t>(bytes, header_bytes);
    if (!ec && data_bytes < count) {
      std::string msg = "is truncated: the header declares ";
      msg += shape;
      msg += " = ";
      msg += std::to_string(count);
      msg += " values but the file holds ";
      msg += std::to_string(data_bytes);
      msg += " bytes of data";
      bad_file(path, msg);
    }
  }
  resources::require_memory(path + " declares " + shape + " bytes, which", static_cast<double>(count),
                            "use a smaller data set");
  // Gzipped: read in pieces, so that a header declaring more than the stream
  // holds fails as truncated, not as a huge allocation.
  std::size_t got = 0;
  constexpr std::size_t kPiece = std::size_t{64} << 20;
  while (got < count) {
    const std::size_t want = std::min(count - got, kPiece);
    out.values.resize(got + want);
    const std::size_t read = read_bytes(f.get(), path, out.values.data() + got, want);
    got += read;
    if (read < want) break;
  }
  if (got != count) {
    std::string msg = "is truncated: the header declares ";
    msg += shape;
    msg += " = ";
    msg += std::to_string(count);
    msg += " values but the file holds ";
    msg += std::to_string(got);
    bad_file(path, msg);
  }
  std::uint8_t extra = 0;
  if (read_bytes(f.get(), path, &extra, 1) != 0) bad_file(path, "has trailing bytes after the declared data");
  return out;
}

IdxFiles find_idx_files(const std::string& dir, IdxPart part) {
  const std::string prefix = part == IdxPart::train ? "train" : "t10k";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) bad_file(dir, "is not a directory of IDX files");
  IdxFiles files;
  files.images = first_existing(dir, {prefix + "-images-idx3-ubyte", prefix + "-images.idx3-ubyte"});
  files.labels = first_existing(dir, {prefix + "-labels-idx1-ubyte", prefix + "-labels.idx1-ubyte"});
  if (files.images.empty() || files.labels.empty()) {
    std::string msg = "has no ";
    msg += files.images.empty() ? prefix + "-images-idx3-ubyte[.gz]" : prefix + "-labels-idx1-ubyte[.gz]";
    msg += " (an MNIST-format directory holds {train,t10k}-{images-idx3,labels-idx1}-ubyte, optionally gzipped)";
    bad_file(dir, msg);
  }
  return files;
}

Dataset load_idx(const std::string& dir, IdxPart part) {
  const IdxFiles files = find_idx_files(dir, part);
  IdxArray images = read_idx(files.images, 3);
  IdxArray labels = read_idx(files.labels, 1);
  if (images.dims[0] != labels.dims[0]) {
    std::string msg = "holds ";
    msg += std::to_string(labels.dims[0]);
    msg += " labels but ";
    msg += files.images;
    msg += " holds ";
    msg += std::to_string(images.dims[0]);
    msg += " images";
    bad_file(files.labels, msg);
  }
  const std::int64_t n = images.dims[0];
  const std::int64_t pixels = images.dims[1] * images.dims[2];
  if (n == 0) bad_file(files.images, "the data set has no examples (the header declares 0 images)");
  // float32 pixels beside the bytes already read.
  resources::require_memory(files.images + " holds " + std::to_string(n) + " images of " + std::to_string(pixels) +
                                " pixels; as float32 they",
                            4.0 * static_cast<double>(n) * static_cast<double>(pixels), "use a smaller data set");
  const at::Tensor raw = at::from_blob(images.values.data(), {n, pixels}, at::kByte);
  Dataset out;
  out.x = raw.to(at::kFloat).div_(255.0f);
  out.y = at::from_blob(labels.values.data(), {n}, at::kByte).to(at::kLong);
  return out;
}

IdxCounts idx_counts(const std::string& dir, bool test) {
  IdxCounts out;
  const std::string train_images = find_idx_files(dir, IdxPart::train).images;
  const std::vector<std::int64_t> train = read_idx_dims(train_images, 3);
  out.train = train[0];
  if (!test) return out;
  const std::string test_images = find_idx_files(dir, IdxPart::test).images;
  const std::vector<std::int64_t> t = read_idx_dims(test_images, 3);
  if (t[1] != train[1] || t[2] != train[2])
    bad_file(test_images, "holds images of " + std::to_string(t[1]) + " x " + std::to_string(t[2]) +
                              " pixels but the training images (" + train_images + ") are " + std::to_string(train[1]) +
                              " x " + std::to_string(train[2]) + "; give both splits the same image size");
  out.test = t[0];
  return out;
}

IdxSplits load_idx_splits(const std::string& dir) {
  idx_counts(dir, /*test=*/true);  // the image sizes agree (the headers alone)
  return {load_idx(dir, IdxPart::train), load_idx(dir, IdxPart::test)};
}

bool is_idx_directory(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return false;
  return !first_existing(path, {"train-images-idx3-ubyte", "train-images.idx3-ubyte"}).empty();
}

}  // namespace gradmatch::training
