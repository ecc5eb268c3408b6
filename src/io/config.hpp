#pragma once
// Strict TOML configuration reading (toml++), used by every study.
//
// A ConfigReader hands out typed values by dotted key ("data.n") and records
// which keys were read; finish() rejects any key that was never asked for.
// Every error is an InputError of the form
//     FILE:LINE: key 'data.n': <what is wrong>; <what to write instead>
// and the CLI turns it into exit code 2 before any output is written.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gradmatch::io {

class ConfigReader {
 public:
  /// Parses the file; a syntax error becomes an InputError with file and line.
  explicit ConfigReader(const std::string& path);
  ~ConfigReader();
  ConfigReader(const ConfigReader&) = delete;
  ConfigReader& operator=(const ConfigReader&) = delete;

  const std::string& path() const { return path_; }
  bool has(const std::string& key) const;

  // Required values (missing key -> error) and defaulted values. Integers
  // are checked against [lo, hi]; doubles against [lo, hi] and finiteness.
  std::string get_string(const std::string& key);
  std::string get_string(const std::string& key, const std::string& fallback);
  std::string get_choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& choices);
  std::int64_t get_int(const std::string& key, std::int64_t fallback, std::int64_t lo, std::int64_t hi);
  std::int64_t get_int(const std::string& key, std::int64_t lo, std::int64_t hi);
  double get_double(const std::string& key, double fallback, double lo, double hi);  ///< integers accepted
  double get_double(const std::string& key, double lo, double hi);
  bool get_bool(const std::string& key, bool fallback);
  std::vector<double> get_doubles(const std::string& key, const std::vector<double>& fallback, double lo, double hi);
  std::vector<std::int64_t> get_ints(const std::string& key, const std::vector<std::int64_t>& fallback,
                                     std::int64_t lo, std::int64_t hi);

  /// An array of quoted strings (`["a", "b"]`); `fallback` when absent.
  std::vector<std::string> get_strings(const std::string& key, const std::vector<std::string>& fallback);

  /// "FILE:LINE: key 'k'" (the key's line; "FILE: key 'k'" when the file
  /// does not set it): the start of a message about a key's value that is
  /// found wrong after reading it (a file it names is missing, ...).
  std::string where(const std::string& key) const;

  /// Throws for the first key in the file that no getter asked for.
  void finish() const;

  /// The file's text, as written (results files keep it).
  const std::string& text() const { return text_; }

  /// The config as the study sees it: every key a getter returned, with the
  /// value it returned (defaults included), one `key = value` line per key in
  /// sorted order (strings JSON-quoted, doubles in shortest round-trip form).
  /// Comments, layout, key order and spelled-out defaults do not change it,
  /// so run stores fingerprint it to tell "the same study" from "another".
  std::string effective() const;

  /// What gradmatch did before each key a defaulted getter was asked for
  /// existed (whether or not the file sets it), in effective()'s form: the
  /// key's fallback, by rule, or the value given to key_existed_since(). A run
  /// store made before a key existed resumes when the key has this value now.
  std::string defaults() const;

  /// Declares that gradmatch behaved as `key = before` until the key was
  /// added, where its default now differs (a fix that changes results on
  /// purpose): a run store made before then resumes only with `key = before`
  /// written in the config, never mixing rows of the two behaviours.
  void key_existed_since(const std::string& key, const std::string& before);
  void key_existed_since(const std::string& key, const char* before) { key_existed_since(key, std::string(before)); }
  void key_existed_since(const std::string& key, bool before);
  void key_existed_since(const std::string& key, std::int64_t before);

 private:
  struct Impl;
  std::string path_;
  std::string text_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gradmatch::io
