// Strict TOML configuration reading (see config.hpp).
//
// Getters record every dotted key they are asked for, present or not, so
// finish() can walk the parsed table and call anything never asked for an
// unknown key: a misspelt option must fail loudly rather than fall back to
// its default. Line numbers come from toml++'s source regions.
#include "io/config.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/text.hpp"

namespace gradmatch::io {
namespace {

using text::cat;

std::string article_type(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

/// What was found, for "found ..." in messages.
std::string show(const toml::node& n) {
  if (auto s = n.as_string()) return cat("the string \"", text::clip(s->get()), "\"");
  if (auto i = n.as_integer()) return cat("the integer ", i->get());
  if (auto f = n.as_floating_point()) {  // "10.0", not "10": show why it is not an integer
    std::string v = text::num(f->get());
    if (v.find_first_of(".ein") == std::string::npos) v += ".0";
    return cat("the float ", v);
  }
  if (auto b = n.as_boolean()) return b->get() ? "true" : "false";
  return article_type(n);
}

/// The line a node starts on; implicit tables (made by dotted keys or a
/// deeper [a.b] header) have none, so use their first child's.
std::int64_t line_of(const toml::node& n) {
  if (n.source().begin.line > 0) return n.source().begin.line;
  std::int64_t best = 0;
  if (auto t = n.as_table())
    for (auto&& [k, v] : *t) {
      const std::int64_t l = k.source().begin.line > 0 ? std::int64_t{k.source().begin.line} : line_of(v);
      if (l > 0 && (best == 0 || l < best)) best = l;
    }
  return best;
}

std::vector<std::string> split(const std::string& key) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1)
    parts.push_back(key.substr(start, dot - start));
  parts.push_back(key.substr(start));
  return parts;
}

// Ranges in words: unbounded sides (the type's extremes or infinities) are left out.
std::string int_kind(std::int64_t lo, std::int64_t hi) {
  constexpr auto min = std::numeric_limits<std::int64_t>::min(), max = std::numeric_limits<std::int64_t>::max();
  if (lo == min && hi == max) return "an integer";
  if (hi == max) return cat("an integer >= ", lo);
  if (lo == min) return cat("an integer <= ", hi);
  return cat("an integer in [", lo, ", ", hi, "]");
}

std::string double_kind(double lo, double hi) {
  const bool no_lo = lo <= std::numeric_limits<double>::lowest(), no_hi = hi >= std::numeric_limits<double>::max();
  if (no_lo && no_hi) return "a finite number";
  if (no_hi) return cat("a number >= ", lo);
  if (no_lo) return cat("a number <= ", hi);
  return cat("a number in [", lo, ", ", hi, "]");
}

}  // namespace

struct ConfigReader::Impl {
  std::string path;
  toml::table root;
  std::set<std::string> asked;  ///< every key a getter asked for, found or not
  std::map<std::string, std::string> used;  ///< key -> the value a getter returned, as text (effective())
  std::map<std::string, std::string> fallbacks;  ///< key -> the fallback of a defaulted getter, as text (defaults())
  std::map<std::string, std::string> before;     ///< key -> key_existed_since()'s value, as text (defaults())

  template <class T>
  T record(const std::string& key, T value) {
    used[key] = value_text(value);
    return value;
  }
  /// A defaulted getter: remembers its fallback, then returns the value found
  /// (`n` present) or the fallback, recorded as the value.
  template <class T, class Read>
  T record_defaulted(const std::string& key, const toml::node* n, const T& fallback, Read read) {
    fallbacks[key] = value_text(fallback);
    return record(key, n ? read(*n) : fallback);
  }
  static std::string value_text(const std::string& v) { return nlohmann::json(v).dump(); }
  static std::string value_text(double v) { return text::num(v); }
  static std::string value_text(std::int64_t v) { return std::to_string(v); }
  static std::string value_text(bool v) { return v ? "true" : "false"; }
  template <class T>
  static std::string value_text(const std::vector<T>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) s += cat(i ? ", " : "", value_text(v[i]));
    return s + "]";
  }

  [[noreturn]] void fail(std::int64_t line, const std::string& key, const std::string& what) const {
    throw InputError(cat(path, ":", line, ": key '", text::clip(key), "': ", what));
  }

  /// The node at a dotted key, or nullptr. `parent_line` receives the line of
  /// the deepest existing table on the way (1 for the root): where to add it.
  const toml::node* find(const std::string& key, std::int64_t& parent_line, bool strict) const {
    const toml::table* table = &root;
    parent_line = 1;
    const std::vector<std::string> parts = split(key);
    std::string prefix;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const toml::node* n = table->get(parts[i]);
      if (!n || i + 1 == parts.size()) return n;
      prefix += cat(i ? "." : "", parts[i]);
      if (!n->is_table()) {
        if (!strict) return nullptr;
        fail(line_of(*n), prefix, cat("is ", show(*n), " but '", key, "' needs it to be a table; write [", prefix,
                                      "] as a table"));
      }
      table = n->as_table();
      if (const std::int64_t l = line_of(*table); l > 0) parent_line = l;
    }
    return nullptr;
  }

  /// Looks a key up for a getter and records it; nullptr when absent.
  const toml::node* lookup(const std::string& key) {
    asked.insert(key);
    std::int64_t unused = 0;
    return find(key, unused, true);
  }

  /// Like lookup(), but an absent key is an error asking for `kind`.
  const toml::node& require(const std::string& key, const std::string& kind) {
    asked.insert(key);
    std::int64_t line = 1;
    if (const toml::node* n = find(key, line, true)) return *n;
    const auto dot = key.rfind('.');
    fail(line, key,
         cat("this required key is missing; add ", dot == std::string::npos ? key : key.substr(dot + 1), " = <",
             kind, ">", dot == std::string::npos ? std::string(" at the top level") : cat(" under [", key.substr(0, dot), "]")));
  }

  [[noreturn]] void wrong_type(const toml::node& n, const std::string& key, const std::string& kind) const {
    fail(line_of(n), key, cat("found ", show(n), "; write ", kind, " instead"));
  }

  std::string string_value(const toml::node& n, const std::string& key) const {
    if (auto s = n.as_string()) return s->get();
    wrong_type(n, key, "a quoted string");
  }

  std::int64_t int_value(const toml::node& n, const std::string& key, std::int64_t lo, std::int64_t hi,
                         const std::string& what = "") const {
    auto i = n.as_integer();
    if (!i) fail(line_of(n), key, cat(what, "found ", show(n), "; write ", int_kind(lo, hi), " (no decimal point)"));
    if (i->get() < lo || i->get() > hi)
      fail(line_of(n), key, cat(what, "value ", i->get(), " is out of range; write ", int_kind(lo, hi)));
    return i->get();
  }

  double double_value(const toml::node& n, const std::string& key, double lo, double hi,
                      const std::string& what = "") const {
    double v;
    if (auto i = n.as_integer())
      v = static_cast<double>(i->get());
    else if (auto f = n.as_floating_point())
      v = f->get();
    else
      fail(line_of(n), key, cat(what, "found ", show(n), "; write ", double_kind(lo, hi)));
    if (!std::isfinite(v)) fail(line_of(n), key, cat(what, "value ", v, " is not finite; write ", double_kind(lo, hi)));
    if (v < lo || v > hi) fail(line_of(n), key, cat(what, "value ", v, " is out of range; write ", double_kind(lo, hi)));
    return v;
  }

  template <class T, class F>
  std::vector<T> array_value(const toml::node& n, const std::string& key, const std::string& kind, F&& element) const {
    auto a = n.as_array();
    if (!a) wrong_type(n, key, cat("an array of ", kind, ", e.g. [1, 2]"));
    std::vector<T> out;
    for (std::size_t k = 0; k < a->size(); ++k) out.push_back(element((*a)[k], cat("element ", k, ": ")));
    return out;
  }

  bool entered(const std::string& table) const {
    const std::string prefix = table + ".";
    auto it = asked.lower_bound(prefix);
    return it != asked.end() && it->compare(0, prefix.size(), prefix) == 0;
  }

  /// Names a getter asked for directly inside table `prefix` ("" = root).
  std::set<std::string> known_names(const std::string& prefix) const {
    std::set<std::string> names;
    for (const std::string& k : asked) {
      if (!prefix.empty() && k.compare(0, prefix.size() + 1, prefix + ".") != 0) continue;
      const std::string rest = prefix.empty() ? k : k.substr(prefix.size() + 1);
      names.insert(rest.substr(0, rest.find('.')));
    }
    return names;
  }

  void check_all_read(const toml::table& table, const std::string& prefix) const {
    for (auto&& [k, v] : table) {
      const std::string name(k.str());
      const std::string full = prefix.empty() ? name : cat(prefix, ".", name);
      // No gradmatch key holds a dot: "data.n" = 5 (quoted) is one key of that
      // name, not n in [data], and would otherwise pass for the key it spells.
      if (name.find('.') != std::string::npos) {
        const std::int64_t line = k.source().begin.line > 0 ? std::int64_t{k.source().begin.line} : line_of(v);
        fail(line, full, cat("a quoted key holding a dot is one key named \"", name, "\", not a key in a table; write ",
                             name, " = ... without the quotes"));
      }
      if (asked.count(full)) continue;
      if (v.is_table() && entered(full)) {
        check_all_read(*v.as_table(), full);
        continue;
      }
      const std::int64_t line = k.source().begin.line > 0 ? std::int64_t{k.source().begin.line} : line_of(v);
      std::string what = v.is_table() ? "unknown table" : "unknown key";
      const std::set<std::string> known = known_names(prefix);
      const std::string close = text::closest(name, std::vector<std::string>(known.begin(), known.end()));
      if (!close.empty())
        what += cat("; did you mean '", prefix.empty() ? close : cat(prefix, ".", close), "'?");
      else if (!known.empty()) {
        what += "; remove it (known here: ";
        for (const std::string& n : known) what += cat(n == *known.begin() ? "" : ", ", n);
        what += ")";
      } else {
        what += "; remove it";
      }
      fail(line, full, what);
    }
  }
};

ConfigReader::ConfigReader(const std::string& path) : path_(path), impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw InputError(cat(path, ": the config file does not exist or is not a file; check the path"));
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) throw InputError(cat(path, ": the config file cannot be read; check its permissions"));
  text_ = text.str();
  try {
    impl_->root = toml::parse(text_, path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw InputError(cat(path, ":", where.line, ": TOML syntax error at column ", where.column, ": ",
                         e.description(), "; fix the syntax (https://toml.io)"));
  }
}

ConfigReader::~ConfigReader() = default;

bool ConfigReader::has(const std::string& key) const {
  std::int64_t unused = 0;
  return impl_->find(key, unused, false) != nullptr;
}

std::string ConfigReader::get_string(const std::string& key) {
  return impl_->record(key, impl_->string_value(impl_->require(key, "a quoted string"), key));
}

std::string ConfigReader::get_string(const std::string& key, const std::string& fallback) {
  return impl_->record_defaulted(key, impl_->lookup(key), fallback,
                                 [&](const toml::node& n) { return impl_->string_value(n, key); });
}

std::string ConfigReader::get_choice(const std::string& key, const std::string& fallback,
                                     const std::vector<std::string>& choices) {
  return impl_->record_defaulted(key, impl_->lookup(key), fallback, [&](const toml::node& n) {
    std::string v = impl_->string_value(n, key);
    if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
      std::string list;
      for (const std::string& c : choices) list += cat(list.empty() ? "" : ", ", "\"", c, "\"");
      impl_->fail(line_of(n), key, cat("\"", text::clip(v), "\" is not a valid choice; write one of ", list));
    }
    return v;
  });
}

std::int64_t ConfigReader::get_int(const std::string& key, std::int64_t fallback, std::int64_t lo, std::int64_t hi) {
  return impl_->record_defaulted(key, impl_->lookup(key), fallback,
                                 [&](const toml::node& n) { return impl_->int_value(n, key, lo, hi); });
}

std::int64_t ConfigReader::get_int(const std::string& key, std::int64_t lo, std::int64_t hi) {
  return impl_->record(key, impl_->int_value(impl_->require(key, int_kind(lo, hi)), key, lo, hi));
}

double ConfigReader::get_double(const std::string& key, double fallback, double lo, double hi) {
  return impl_->record_defaulted(key, impl_->lookup(key), fallback,
                                 [&](const toml::node& n) { return impl_->double_value(n, key, lo, hi); });
}

double ConfigReader::get_double(const std::string& key, double lo, double hi) {
  return impl_->record(key, impl_->double_value(impl_->require(key, double_kind(lo, hi)), key, lo, hi));
}

bool ConfigReader::get_bool(const std::string& key, bool fallback) {
  return impl_->record_defaulted(key, impl_->lookup(key), fallback, [&](const toml::node& n) -> bool {
    if (auto b = n.as_boolean()) return b->get();
    impl_->wrong_type(n, key, "true or false");
  });
}

std::vector<double> ConfigReader::get_doubles(const std::string& key, const std::vector<double>& fallback, double lo,
                                              double hi) {
  return impl_->record_defaulted(key, impl_->lookup(key), fallback, [&](const toml::node& n) {
    return impl_->array_value<double>(n, key, cat("numbers (", double_kind(lo, hi), ")"),
                                      [&](const toml::node& e, const std::string& what) {
                                        return impl_->double_value(e, key, lo, hi, what);
                                      });
  });
}

std::vector<std::int64_t> ConfigReader::get_ints(const std::string& key, const std::vector<std::int64_t>& fallback,
                                                 std::int64_t lo, std::int64_t hi) {
  return impl_->record_defaulted(key, impl_->lookup(key), fallback, [&](const toml::node& n) {
    return impl_->array_value<std::int64_t>(n, key, cat("integers (", int_kind(lo, hi), ")"),
                                            [&](const toml::node& e, const std::string& what) {
                                              return impl_->int_value(e, key, lo, hi, what);
                                            });
  });
}

std::vector<std::string> ConfigReader::get_strings(const std::string& key, const std::vector<std::string>& fallback) {
  return impl_->record_defaulted(key, impl_->lookup(key), fallback, [&](const toml::node& n) {
    return impl_->array_value<std::string>(n, key, "quoted strings", [&](const toml::node& e, const std::string&) {
      return impl_->string_value(e, key);
    });
  });
}

std::string ConfigReader::where(const std::string& key) const {
  std::int64_t unused = 0;
  const toml::node* n = impl_->find(key, unused, false);
  const std::int64_t line = n ? line_of(*n) : 0;
  return line > 0 ? cat(path_, ":", line, ": key '", text::clip(key), "'") : cat(path_, ": key '", text::clip(key), "'");
}

void ConfigReader::finish() const { impl_->check_all_read(impl_->root, ""); }

std::string ConfigReader::effective() const {
  std::string out;
  for (const auto& [key, value] : impl_->used) out += cat(key, " = ", value, "\n");
  return out;
}

std::string ConfigReader::defaults() const {
  std::string out;
  for (const auto& [key, value] : impl_->fallbacks) {
    const auto it = impl_->before.find(key);
    out += cat(key, " = ", it == impl_->before.end() ? value : it->second, "\n");
  }
  return out;
}

void ConfigReader::key_existed_since(const std::string& key, const std::string& before) {
  impl_->before[key] = Impl::value_text(before);
}

void ConfigReader::key_existed_since(const std::string& key, bool before) {
  impl_->before[key] = Impl::value_text(before);
}

void ConfigReader::key_existed_since(const std::string& key, std::int64_t before) {
  impl_->before[key] = Impl::value_text(before);
}

}  // namespace gradmatch::io
