#pragma once
// Result schemas: each result type of a study is described once, and the
// three places it appears are generated from that description:
//
//   the run-store row     encode(record) -> doubles, decode(doubles) -> record
//   results.h5            one dataset per field, shaped [axes..., field dims...],
//                         with `description`, `units` and `dims` attributes;
//                         integers and flags stay integers (int64)
//   summary.json          one object per record, field name -> value
//
// A field is a name, a kind, a unit, a description and how to reach it in
// the record (a data member, a member of a member, or a fixed-length
// vector / matrix member whose length the study knows at run time).
//
// Axis order (every results.h5 of gradmatch): the grid axes of the study's
// configuration in config order (e.g. depth, width, rate; p, eta), then the
// replicate axis (seed, pool, replicate), then the field's own axes (m, step,
// parameter). Datasets name their axes in the `dims` attribute.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <span>
#include <type_traits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/matrix.hpp"
#include "io/hdf5_file.hpp"

namespace gradmatch::studies {

enum class FieldKind { float64, int64, flag };

/// How the non-finite scalar float64 values of a record that did not diverge
/// travel through the run store (Schema::encode_finished), which marks a row
/// whose values are not all finite as diverged: NaN (a value that does not
/// exist, e.g. the standard error of a coefficient the design does not
/// identify) as the lowest double, +inf (e.g. the condition number of a
/// rank-deficient design) as the largest, -inf one step above the lowest.
inline constexpr double kStoredNaN = std::numeric_limits<double>::lowest();
inline constexpr double kStoredInf = std::numeric_limits<double>::max();
inline constexpr double kStoredMinusInf = -0x1.ffffffffffffep+1023;

/// One field of a record type R.
template <class R>
struct Field {
  std::string name;
  FieldKind kind = FieldKind::float64;
  std::string units;
  std::string description;
  std::vector<std::string> dims;          ///< the field's own axes (empty: a scalar)
  std::vector<std::int64_t> extent;       ///< their sizes
  bool in_summary = true;                 ///< part of summary.json records
  std::vector<std::string> labels;        ///< an enumeration: summary.json shows labels[value]
  std::function<void(const R&, double*)> get;  ///< writes length() values
  std::function<void(R&, const double*)> set;  ///< reads length() values

  std::int64_t length() const {
    std::int64_t n = 1;
    for (std::int64_t e : extent) n *= e;
    return n;
  }
};

namespace schema_detail {
template <class T>
constexpr FieldKind kind_of() {
  if constexpr (std::is_same_v<T, bool>) return FieldKind::flag;
  else if constexpr (std::is_integral_v<T> || std::is_enum_v<T>) return FieldKind::int64;
  else return FieldKind::float64;
}
/// A stored value back as T; a non-finite value (a row of a task that
/// diverged before the field was known) is 0 for integers and flags.
template <class T>
double to_double(T x) {
  if constexpr (std::is_enum_v<T>) return static_cast<double>(static_cast<std::underlying_type_t<T>>(x));
  else return static_cast<double>(x);
}
template <class T>
T from_double(double x) {
  if constexpr (std::is_enum_v<T>) return static_cast<T>(from_double<std::underlying_type_t<T>>(x));
  else if constexpr (std::is_floating_point_v<T>) return static_cast<T>(x);
  else if constexpr (std::is_same_v<T, bool>) return std::isfinite(x) && x != 0.0;
  else return std::isfinite(x) ? static_cast<T>(x) : T{};
}
}  // namespace schema_detail

/// A scalar data member (double, an integer type or bool).
template <class R, class T>
Field<R> scalar(std::string name, T R::*member, std::string units, std::string description) {
  Field<R> f{std::move(name), schema_detail::kind_of<T>(), std::move(units), std::move(description), {}, {}, true, {}, {}, {}};
  f.get = [member](const R& r, double* out) { *out = schema_detail::to_double(r.*member); };
  f.set = [member](R& r, const double* in) { r.*member = schema_detail::from_double<T>(*in); };
  return f;
}

/// An enumeration member: int64 in results.h5 (the description lists the
/// codes), its label in summary.json.
template <class R, class E>
Field<R> enumeration(std::string name, E R::*member, std::vector<std::string> labels, std::string description) {
  Field<R> f = scalar(std::move(name), member, "", std::move(description));
  for (std::size_t i = 0; i < labels.size(); ++i)
    f.description += (i == 0 ? " (" : ", ") + std::to_string(i) + " " + labels[i] + (i + 1 == labels.size() ? ")" : "");
  f.labels = std::move(labels);
  return f;
}

/// A scalar member of a member (r.*outer.*inner).
template <class R, class S, class T>
Field<R> scalar(std::string name, S R::*outer, T S::*inner, std::string units, std::string description) {
  Field<R> f{std::move(name), schema_detail::kind_of<T>(), std::move(units), std::move(description), {}, {}, true, {}, {}, {}};
  f.get = [outer, inner](const R& r, double* out) { *out = schema_detail::to_double(r.*outer.*inner); };
  f.set = [outer, inner](R& r, const double* in) { r.*outer.*inner = schema_detail::from_double<T>(*in); };
  return f;
}

/// A std::vector<double> member of fixed length `n` (axis `dim`); not in
/// summary.json unless `in_summary`.
template <class R>
Field<R> vector(std::string name, std::vector<double> R::*member, std::string dim, std::int64_t n, std::string units,
                std::string description, bool in_summary = false) {
  Field<R> f{std::move(name), FieldKind::float64, std::move(units), std::move(description), {std::move(dim)}, {n},
             in_summary,      {},                 {},               {}};
  f.get = [member, n](const R& r, double* out) {
    const std::vector<double>& v = r.*member;
    if (static_cast<std::int64_t>(v.size()) != n)
      throw std::logic_error("schema: a vector field does not have its declared length");
    std::copy(v.begin(), v.end(), out);
  };
  f.set = [member, n](R& r, const double* in) { (r.*member).assign(in, in + n); };
  return f;
}

/// A Matrix member of fixed shape [rows, cols] (axes `dims`).
template <class R, class Get>
Field<R> matrix(std::string name, Get&& access, std::vector<std::string> dims, std::int64_t rows, std::int64_t cols,
                std::string units, std::string description) {
  Field<R> f{std::move(name), FieldKind::float64, std::move(units), std::move(description), std::move(dims),
             {rows, cols},    false,              {},               {},               {}};
  f.get = [access, rows, cols](const R& r, double* out) {
    const Matrix& m = access(const_cast<R&>(r));
    if (m.rows() != rows || m.cols() != cols)
      throw std::logic_error("schema: a matrix field does not have its declared shape");
    std::copy(m.values().begin(), m.values().end(), out);
  };
  f.set = [access, rows, cols](R& r, const double* in) {
    access(r) = Matrix(rows, cols, std::vector<double>(in, in + rows * cols));
  };
  return f;
}

/// The axes records are laid out on in results.h5 (outermost first).
struct Axes {
  std::vector<std::string> names;
  std::vector<std::int64_t> sizes;
  std::int64_t count() const {
    std::int64_t n = 1;
    for (std::int64_t s : sizes) n *= s;
    return n;
  }
};

template <class R>
class Schema {
 public:
  Schema(std::initializer_list<Field<R>> fields) : fields_(fields) {}
  explicit Schema(std::vector<Field<R>> fields) : fields_(std::move(fields)) {}

  const std::vector<Field<R>>& fields() const { return fields_; }

  /// Doubles per record in the run store.
  std::int64_t width() const {
    std::int64_t w = 0;
    for (const Field<R>& f : fields_) w += f.length();
    return w;
  }

  std::vector<double> encode(const R& record) const {
    std::vector<double> row(static_cast<std::size_t>(width()));
    double* at = row.data();
    for (const Field<R>& f : fields_) {
      f.get(record, at);
      at += f.length();
    }
    return row;
  }

  /// encode() of a record that did not diverge. The run store marks a row
  /// whose values are not all finite as diverged, so a scalar float64 field
  /// that is not finite for another reason (the standard error of a
  /// coefficient the design does not identify, the Adam fit where none was
  /// asked for, the condition number of a rank-deficient design) is written
  /// as kStoredNaN, kStoredInf or kStoredMinusInf; decode() reads them back.
  /// A diverged record is encode()d: its NaN estimates mark it diverged.
  std::vector<double> encode_finished(const R& record) const {
    std::vector<double> row = encode(record);
    std::size_t at = 0;
    for (const Field<R>& f : fields_) {
      double& v = row[at];
      if (f.kind == FieldKind::float64 && f.extent.empty() && !std::isfinite(v))
        v = std::isnan(v) ? kStoredNaN : (v > 0 ? kStoredInf : kStoredMinusInf);
      at += static_cast<std::size_t>(f.length());
    }
    return row;
  }

  R decode(std::span<const double> row) const {
    if (static_cast<std::int64_t>(row.size()) != width())
      throw std::logic_error("schema: a stored row does not have the schema's width");
    R record{};
    const double* at = row.data();
    for (const Field<R>& f : fields_) {
      if (f.kind == FieldKind::float64 && f.extent.empty() &&
          (*at == kStoredNaN || *at == kStoredInf || *at == kStoredMinusInf)) {
        const double inf = std::numeric_limits<double>::infinity();
        const double value = *at == kStoredNaN ? std::numeric_limits<double>::quiet_NaN() : (*at == kStoredInf ? inf : -inf);
        f.set(record, &value);
      } else {
        f.set(record, at);
      }
      at += f.length();
    }
    return record;
  }

  /// `record` with every float64 field NaN except those named in `keep`:
  /// how a run that diverged or was not selected is published (its flags,
  /// counts and coordinates stay; its estimates do not exist).
  R without_estimates(R record, std::initializer_list<std::string_view> keep = {}) const {
    for (const Field<R>& f : fields_) {
      if (f.kind != FieldKind::float64 || std::find(keep.begin(), keep.end(), f.name) != keep.end()) continue;
      const std::vector<double> nan(static_cast<std::size_t>(f.length()), std::numeric_limits<double>::quiet_NaN());
      f.set(record, nan.data());
    }
    return record;
  }

  /// Every row of a row-major table of records.
  std::vector<R> decode_all(const std::vector<double>& table) const {
    const auto w = static_cast<std::size_t>(width());
    std::vector<R> out;
    for (std::size_t at = 0; at + w <= table.size(); at += w)
      out.push_back(decode(std::span<const double>(table).subspan(at, w)));
    return out;
  }

  /// One dataset `group/<field>` (`<field>` when group is empty) per field,
  /// shaped [axes..., field dims...].
  void write(io::ResultsWriter& w, const std::string& group, std::span<const R> records, const Axes& axes) const {
    if (static_cast<std::int64_t>(records.size()) != axes.count())
      throw std::logic_error("schema: the records do not fill their axes");
    for (const Field<R>& f : fields_) {
      std::vector<std::int64_t> shape = axes.sizes;
      shape.insert(shape.end(), f.extent.begin(), f.extent.end());
      io::DatasetInfo info{f.description, f.units, axes.names};
      info.dims.insert(info.dims.end(), f.dims.begin(), f.dims.end());
      const std::string name = group.empty() ? f.name : group + "/" + f.name;
      const auto n = static_cast<std::size_t>(f.length());
      std::vector<double> values(records.size() * n);
      for (std::size_t i = 0; i < records.size(); ++i) f.get(records[i], values.data() + i * n);
      if (f.kind == FieldKind::float64) {
        w.write(name, values, info, shape);
      } else {
        std::vector<std::int64_t> ints(values.size());
        for (std::size_t i = 0; i < values.size(); ++i) ints[i] = static_cast<std::int64_t>(values[i]);
        if (f.kind == FieldKind::flag) info.description += " (1 = yes, 0 = no)";
        w.write(name, ints, info, shape);
      }
    }
  }

  /// The record as a JSON object of its summary fields (non-finite values
  /// become null when written; flags are booleans, counts integers).
  nlohmann::json json(const R& record) const {
    nlohmann::json out = nlohmann::json::object();
    for (const Field<R>& f : fields_) {
      if (!f.in_summary) continue;
      std::vector<double> v(static_cast<std::size_t>(f.length()));
      f.get(record, v.data());
      const auto value = [&](double x) -> nlohmann::json {
        if (!f.labels.empty() && x >= 0 && x < static_cast<double>(f.labels.size()))
          return f.labels[static_cast<std::size_t>(x)];
        switch (f.kind) {
          case FieldKind::flag: return x != 0.0;
          case FieldKind::int64: return static_cast<std::int64_t>(x);
          case FieldKind::float64: break;
        }
        return x;
      };
      if (f.extent.empty()) {
        out[f.name] = value(v[0]);
      } else {
        nlohmann::json a = nlohmann::json::array();
        for (double x : v) a.push_back(value(x));
        out[f.name] = a;
      }
    }
    return out;
  }

  nlohmann::json json(std::span<const R> records) const {
    nlohmann::json a = nlohmann::json::array();
    for (const R& r : records) a.push_back(json(r));
    return a;
  }

 private:
  std::vector<Field<R>> fields_;
};

}  // namespace gradmatch::studies
