// `gradmatch report PATH [--json]`: a study output directory as readable
// tables (one layout per study, built from summary.json by key name, so a
// key that is missing shows as n/a rather than failing), or an equation file
// described. Values that fail their study's trust rule are marked `*`; the
// lower end of an interval of a distance is never printed below 0.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "core/text.hpp"
#include "io/equation_file.hpp"
#include "io/json_output.hpp"
#include "io/run_store.hpp"

namespace gradmatch::cli {
namespace {

using nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- reading summary.json by name ------------------------------------------

/// o[key] as a number; NaN when absent, null or not a number.
double num(const json& o, const std::string& key) {
  if (!o.is_object()) return kNaN;
  const auto it = o.find(key);
  return it != o.end() && it->is_number() ? it->get<double>() : kNaN;
}

/// o[key][i] as a number; NaN when absent.
double num_at(const json& o, const std::string& key, std::size_t i) {
  if (!o.is_object()) return kNaN;
  const auto it = o.find(key);
  if (it == o.end() || !it->is_array() || i >= it->size() || !(*it)[i].is_number()) return kNaN;
  return (*it)[i].get<double>();
}

/// o[key] as an array of numbers (empty when absent).
std::vector<double> numbers(const json& o, const std::string& key) {
  std::vector<double> out;
  if (!o.is_object() || !o.contains(key) || !o.at(key).is_array()) return out;
  for (const json& v : o.at(key)) out.push_back(v.is_number() ? v.get<double>() : kNaN);
  return out;
}

/// o[key] as an array of objects (empty when absent).
std::vector<json> records(const json& o, const std::string& key) {
  std::vector<json> out;
  if (!o.is_object() || !o.contains(key) || !o.at(key).is_array()) return out;
  for (const json& v : o.at(key))
    if (v.is_object()) out.push_back(v);
  return out;
}

const json& member(const json& o, const std::string& key) {
  static const json empty = json::object();
  if (!o.is_object()) return empty;
  const auto it = o.find(key);
  return it != o.end() && it->is_object() ? *it : empty;
}

std::string text_of(const json& o, const std::string& key) {
  if (!o.is_object()) return "";
  const auto it = o.find(key);
  if (it == o.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// ---- the report model -------------------------------------------------------

enum class Style { plain, plus_minus, interval, range, with_aux };

struct Cell {
  double value = kNaN;
  double se = kNaN;                ///< plus_minus
  double low = kNaN, high = kNaN;  ///< interval or range
  double aux = kNaN;               ///< with_aux: printed in parentheses
  bool distance = false;           ///< interval of a distance: the lower end is clipped at 0
  bool trusted = true;
  std::string text;  ///< shown instead of the number (e.g. a run's status)
};

struct Table {
  std::string title;
  std::string corner;  ///< header of the label column, e.g. "λ1 \\ λ2"
  std::vector<std::string> columns;
  std::vector<std::string> labels;
  std::vector<std::vector<Cell>> rows;
  std::vector<bool> in_text;  ///< rows printed as text (all go into --json)
  Style style = Style::plain;
  int digits = 3;
};

Table titled(std::string title, std::string corner, std::vector<std::string> columns) {
  Table t;
  t.title = std::move(title);
  t.corner = std::move(corner);
  t.columns = std::move(columns);
  return t;
}

struct Report {
  std::string study;
  std::vector<std::pair<std::string, json>> facts;  ///< one "label: value" line each
  std::vector<Table> tables;
  std::vector<std::string> trust_rules;  ///< what `*` means for this study
};

std::string fmt(double x, int digits = 3) {
  if (std::isnan(x)) return "n/a";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, x);
  return buf;
}

json number_json(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

/// The lower end of an interval as printed: a distance's is at least 0.
double shown_low(const Cell& c) { return c.distance && c.low < 0.0 ? 0.0 : c.low; }
bool clipped(const Cell& c) { return c.distance && c.low < 0.0; }

std::string cell_text(const Cell& c, Style style, int digits) {
  std::string s;
  if (!c.text.empty()) {
    s = c.text;
  } else {
    s = fmt(c.value, digits);
    switch (style) {
      case Style::plain:
        break;
      case Style::plus_minus:
        s += " ± " + fmt(c.se, digits);
        break;
      case Style::interval:
        if (std::isnan(c.low) && std::isnan(c.high)) break;
        s += " [" + fmt(shown_low(c), digits) + (clipped(c) ? "^" : "") + ", " + fmt(c.high, digits) + "]";
        break;
      case Style::range:
        if (std::isnan(c.low) && std::isnan(c.high)) break;
        s += " (" + fmt(c.low, digits) + " to " + fmt(c.high, digits) + ")";
        break;
      case Style::with_aux:
        s += " (" + fmt(c.aux, digits) + ")";
        break;
    }
  }
  if (!c.trusted) s += "*";
  return s;
}

/// Columns on a terminal: UTF-8 code points, less combining marks
/// (U+0300..U+036F, as in R̂); the report uses no wide characters.
std::size_t width(const std::string& s) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto ch = static_cast<unsigned char>(s[i]);
    if ((ch & 0xC0) == 0x80) continue;
    const auto next = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
    if (ch == 0xCC || (ch == 0xCD && next < 0xB0)) continue;
    ++n;
  }
  return n;
}

std::string pad(const std::string& s, std::size_t w, bool right) {
  const std::string fill(w > width(s) ? w - width(s) : 0, ' ');
  return right ? fill + s : s + fill;
}

void print_table(std::ostream& os, const Table& t) {
  std::vector<std::vector<std::string>> grid;
  grid.push_back({t.corner});
  for (const auto& c : t.columns) grid.back().push_back(c);
  std::size_t hidden = 0;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    if (!t.in_text.empty() && !t.in_text[r]) {
      ++hidden;
      continue;
    }
    grid.push_back({t.labels[r]});
    for (const Cell& c : t.rows[r]) grid.back().push_back(cell_text(c, t.style, t.digits));
  }
  std::vector<std::size_t> w(t.columns.size() + 1, 0);
  for (const auto& row : grid)
    for (std::size_t j = 0; j < row.size(); ++j) w[j] = std::max(w[j], width(row[j]));
  os << "\n" << t.title << "\n";
  for (std::size_t i = 0; i < grid.size(); ++i) {
    os << "  ";
    for (std::size_t j = 0; j < grid[i].size(); ++j) os << (j ? "  " : "") << pad(grid[i][j], w[j], j > 0);
    os << "\n";
    if (i == 0) {
      os << "  ";
      for (std::size_t j = 0; j < w.size(); ++j) os << (j ? "  " : "") << std::string(w[j], '-');
      os << "\n";
    }
  }
  if (hidden) os << "  (" << hidden << " more rows in --json)\n";
}

bool any_cell(const Report& r, const std::function<bool(const Cell&)>& pred) {
  for (const Table& t : r.tables)
    for (const auto& row : t.rows)
      for (const Cell& c : row)
        if (pred(c)) return true;
  return false;
}

void print_report(std::ostream& os, const std::string& dir, const Report& r) {
  os << dir << ": " << r.study << "\n";
  for (const auto& [label, value] : r.facts)
    os << "  " << label << ": "
       << (value.is_number()   ? fmt(value.get<double>(), 4)
           : value.is_string() ? value.get<std::string>()
                               : value.dump())
       << "\n";
  for (const Table& t : r.tables) print_table(os, t);
  const bool untrusted = any_cell(r, [](const Cell& c) { return !c.trusted; });
  const bool clip = any_cell(r, clipped);
  if (untrusted || clip) os << "\n";
  if (untrusted)
    for (std::size_t i = 0; i < r.trust_rules.size(); ++i) os << (i ? "   " : " * ") << r.trust_rules[i] << "\n";
  if (clip)
    os << " ^ the 95% interval of this mean distance reaches below 0; it is shown from 0, since a distance "
          "cannot be negative\n";
}

json cell_json(const Cell& c, Style style) {
  json j = {{"value", number_json(c.value)}, {"trusted", c.trusted}};
  if (!c.text.empty()) j["text"] = c.text;
  if (style == Style::plus_minus) j["se"] = number_json(c.se);
  if (style == Style::interval) {
    j["ci_low"] = number_json(shown_low(c));
    j["ci_high"] = number_json(c.high);
    if (clipped(c)) j["ci_low_clipped_from"] = number_json(c.low);
  }
  if (style == Style::range) {
    j["min"] = number_json(c.low);
    j["max"] = number_json(c.high);
  }
  if (style == Style::with_aux) j["aux"] = number_json(c.aux);
  return j;
}

/// The report's tables with unrounded numbers, and the summary they were read from.
json report_json(const std::string& dir, const Report& r, const json& summary) {
  json facts = json::object();
  for (const auto& [label, value] : r.facts) facts[label] = value;
  json tables = json::array();
  for (const Table& t : r.tables) {
    json rows = json::array();
    for (std::size_t i = 0; i < t.rows.size(); ++i) {
      json cells = json::array();
      for (const Cell& c : t.rows[i]) cells.push_back(cell_json(c, t.style));
      rows.push_back({{"label", t.labels[i]}, {"cells", cells}});
    }
    tables.push_back({{"title", t.title}, {"corner", t.corner}, {"columns", t.columns}, {"rows", rows}});
  }
  return {{"path", dir},       {"study", r.study}, {"facts", facts}, {"tables", tables}, {"trust_rules", r.trust_rules},
          {"summary", summary}};
}

// ---- grids: records laid out by two of their keys ---------------------------

std::string key_label(double x) { return fmt(x, 6); }

/// Distinct values of key over the records, in first-seen order.
std::vector<double> axis(const std::vector<json>& recs, const std::string& key) {
  std::vector<double> out;
  for (const json& r : recs) {
    const double v = num(r, key);
    if (std::find(out.begin(), out.end(), v) == out.end() && !std::isnan(v)) out.push_back(v);
  }
  return out;
}

/// A rows × columns table of records; `make` turns the records of one cell
/// (several when the cell has several seeds) into a Cell.
template <class Make>
Table grid(std::string title, std::string corner, const std::vector<json>& recs, const std::vector<double>& row_keys,
           const std::function<bool(const json&, double)>& in_row, const std::vector<std::string>& col_labels,
           const std::function<bool(const json&, std::size_t)>& in_col, Make make) {
  Table t = titled(std::move(title), std::move(corner), col_labels);
  for (double rk : row_keys) {
    t.labels.push_back(key_label(rk));
    std::vector<Cell> row;
    for (std::size_t c = 0; c < col_labels.size(); ++c) {
      std::vector<json> in;
      for (const json& r : recs)
        if (in_row(r, rk) && in_col(r, c)) in.push_back(r);
      row.push_back(in.empty() ? Cell{} : make(in));
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::function<bool(const json&, double)> row_is(const std::string& key) {
  return [key](const json& r, double v) { return num(r, key) == v; };
}

std::vector<std::string> labels_of(const std::vector<double>& keys) {
  std::vector<std::string> out;
  for (double k : keys) out.push_back(key_label(k));
  return out;
}

std::function<bool(const json&, std::size_t)> col_is(const std::string& key, std::vector<double> keys) {
  return [key, keys](const json& r, std::size_t c) { return num(r, key) == keys[c]; };
}

double mean_of(const std::vector<json>& recs, const std::string& key) {
  double sum = 0.0;
  std::size_t n = 0;
  for (const json& r : recs) {
    const double v = num(r, key);
    if (std::isnan(v)) continue;
    sum += v;
    ++n;
  }
  return n ? sum / static_cast<double>(n) : kNaN;
}

// ---- elastic_net -------------------------------------------------------------

// Trust rule: the cell's fit explains the gradient (median residual ratio
// ≤ 0.8), its design separates the two columns (median condition number
// ≤ 1e3), and the coefficient is more than 2 SE above 0.
constexpr double kNetMaxResidual = 0.8;
constexpr double kNetMaxCondition = 1e3;
constexpr double kNetMinZ = 2.0;

bool net_cell_trusted(const json& cell) {
  if (cell.contains("trusted") && cell.at("trusted").is_boolean()) return cell.at("trusted").get<bool>();
  const double resid = num(cell, "residual_ratio_median");
  const double cond = num(cell, "condition_number_median");
  // A null condition number is a rank-deficient design.
  return resid <= kNetMaxResidual && cond <= kNetMaxCondition;
}

Report elastic_net_report(const json& s) {
  Report r;
  const auto cells = records(s, "cells");
  const auto l1 = axis(cells, "lambda1");
  const auto l2 = axis(cells, "lambda2");
  r.facts.push_back({"cells (λ1 × λ2)", std::to_string(l1.size()) + " × " + std::to_string(l2.size())});
  if (s.contains("seeds")) r.facts.push_back({"seeds per cell", s.at("seeds")});
  if (s.contains("beta")) r.facts.push_back({"Huber β", s.at("beta")});
  for (int which = 1; which <= 2; ++which) {
    const std::string k = "cells_lambda" + std::to_string(which) + "_within_factor_2";
    if (!std::isnan(num(s, k)))
      r.facts.push_back({"cells whose λ" + std::to_string(which) + " estimate is within 2× of the truth",
                         fmt(num(s, k), 6) + " of " + std::to_string(cells.size())});
  }
  double diverged = 0.0;
  for (const json& c : cells)
    if (num(c, "diverged") > 0.0) diverged += num(c, "diverged");
  if (diverged > 0.0) r.facts.push_back({"diverged runs (left out of their cells)", diverged});
  for (int which = 1; which <= 2; ++which) {
    const std::string k = "lambda" + std::to_string(which);
    Table t = grid("λ" + std::to_string(which) + " estimate, mean ± SE over seeds (rows: true λ1, columns: true λ2)",
                   "λ1 \\ λ2", cells, l1, row_is("lambda1"), labels_of(l2), col_is("lambda2", l2),
                   [&](const std::vector<json>& in) {
                     Cell c;
                     c.value = num(in[0], k + "_hat_mean");
                     c.se = num(in[0], k + "_hat_se");
                     c.trusted = net_cell_trusted(in[0]) && std::isfinite(c.value) &&
                                 !(c.value <= kNetMinZ * (std::isnan(c.se) ? 0.0 : c.se));
                     return c;
                   });
    t.style = Style::plus_minus;
    r.tables.push_back(std::move(t));
  }
  Table d = grid("median residual ratio ‖b − ∇R̂‖/‖b‖ (median ‖∇L‖/‖θ‖)", "λ1 \\ λ2", cells, l1, row_is("lambda1"),
                 labels_of(l2), col_is("lambda2", l2), [](const std::vector<json>& in) {
                   Cell c;
                   c.value = num(in[0], "residual_ratio_median");
                   c.aux = num(in[0], "relative_grad_norm_median");
                   return c;
                 });
  d.style = Style::with_aux;
  d.digits = 2;
  r.tables.push_back(std::move(d));
  Table cond = grid("median condition number of the design [h'(θ), 2θ] (n/a: rank deficient)", "λ1 \\ λ2", cells, l1,
                    row_is("lambda1"), labels_of(l2), col_is("lambda2", l2), [](const std::vector<json>& in) {
                      Cell c;
                      c.value = num(in[0], "condition_number_median");
                      return c;
                    });
  cond.digits = 2;
  r.tables.push_back(std::move(cond));
  r.trust_rules.push_back("not identified: the cell's median residual ratio exceeds " + fmt(kNetMaxResidual) +
                          ", its median condition number exceeds " + fmt(kNetMaxCondition, 6) +
                          " (or the design is rank deficient),");
  r.trust_rules.push_back("or the estimate is not more than " + fmt(kNetMinZ) + " SE above 0");
  return r;
}

// ---- dropout -----------------------------------------------------------------

Report dropout_report(const json& s) {
  Report r;
  const auto cells = records(s, "cells");
  const json& rule = member(s, "trust_rule");
  const double max_grad = std::isnan(num(rule, "max_dropout_grad_norm")) ? 1e-3 : num(rule, "max_dropout_grad_norm");
  // Architectures in first-seen order: (depth, width).
  std::vector<std::pair<double, double>> archs;
  for (const json& c : cells) {
    const std::pair<double, double> a{num(c, "depth"), num(c, "width")};
    if (std::find(archs.begin(), archs.end(), a) == archs.end()) archs.push_back(a);
  }
  std::vector<std::string> arch_labels;
  for (const auto& [d, w] : archs) arch_labels.push_back(fmt(d, 6) + "×" + fmt(w, 6));
  const auto in_arch = [archs](const json& c, std::size_t i) {
    return num(c, "depth") == archs[i].first && num(c, "width") == archs[i].second;
  };
  const auto rates = axis(cells, "rate");
  const auto trusted = [&](const json& c) {
    if (c.contains("trusted") && c.at("trusted").is_boolean()) return c.at("trusted").get<bool>();
    return num(c, "dropout_grad_norm_median") <= max_grad;
  };
  if (s.contains("seeds")) r.facts.push_back({"seeds per cell", s.at("seeds")});
  if (!std::isnan(num(s, "untrusted_cells")))
    r.facts.push_back({"untrusted cells", fmt(num(s, "untrusted_cells"), 6) + " of " + std::to_string(cells.size())});
  const auto add = [&](const std::string& title, const std::string& key, int digits, bool mark) {
    Table t = grid(title, "rate \\ depth×width", cells, rates, row_is("rate"), arch_labels, in_arch,
                   [&](const std::vector<json>& in) {
                     Cell c;
                     c.value = num(in[0], key);
                     if (mark) c.trusted = trusted(in[0]);
                     return c;
                   });
    t.digits = digits;
    r.tables.push_back(std::move(t));
  };
  add("ridge λ estimate, median over seeds (rows: dropout rate, columns: depth × width)", "lambda_hat_median", 3, true);
  add("λ_R: dropout's own penalty projected on ridge, median over seeds", "lambda_penalty_median", 3, false);
  add("λ_ns: the part due to non-stationarity (λ = λ_R + λ_ns), median over seeds", "lambda_nonstationary_median", 3,
      false);
  add("‖g_p‖/‖θ‖ of the dropout objective (unbiased; the stationarity the trust rule judges), median over seeds",
      "dropout_grad_norm_median", 2, false);
  add("cosine between −∇L and the fitted ridge gradient (how ridge-shaped), median over seeds", "cosine_median", 2,
      false);
  add("test accuracy, median over seeds", "test_accuracy_median", 3, false);
  add("epochs trained, median over seeds", "epochs_median", 4, false);
  if (std::any_of(cells.begin(), cells.end(), [](const json& c) { return num(c, "best_epoch_median") > 0; }))
    add("epoch of the best validation loss (early stopping), median over seeds", "best_epoch_median", 4, false);
  if (std::any_of(cells.begin(), cells.end(), [](const json& c) { return !std::isnan(num(c, "adam_lambda_median")); }))
    add("the authors' Adam fit of λ (parity only), median over seeds", "adam_lambda_median", 3, false);
  const auto trends = records(s, "trends");
  if (!trends.empty()) {
    Table t = titled("trend with the dropout rate: Spearman of the medians; within seeds, the mean Spearman and "
                     "its one-sided permutation p-values",
                     "depth×width",
                     {"Spearman(λ, rate)", "monotone increasing", "λ within seeds", "p (λ rises)",
                      "λ_R within seeds", "p (λ_R rises)", "λ_ns within seeds", "p (λ_ns falls)"});
    for (const json& tr : trends) {
      t.labels.push_back(fmt(num(tr, "depth"), 6) + "×" + fmt(num(tr, "width"), 6));
      Cell rho;
      rho.value = num(tr, "spearman");
      Cell mono;
      mono.text = text_of(tr, "monotone_increasing");
      mono.value = mono.text == "true" ? 1.0 : mono.text == "false" ? 0.0 : kNaN;
      if (mono.text == "true") mono.text = "yes";
      if (mono.text == "false") mono.text = "no";
      std::vector<Cell> row{rho, mono};
      for (const auto& [key, p_key] : {std::pair{"seed_trend", "p_increasing"}, std::pair{"seed_trend_penalty", "p_increasing"},
                                         std::pair{"seed_trend_nonstationary", "p_decreasing"}}) {  // n/a in older summaries
        Cell within, p;
        within.value = num(member(tr, key), "statistic");
        p.value = num(member(tr, key), p_key);
        row.push_back(within);
        row.push_back(p);
      }
      t.rows.push_back(std::move(row));
    }
    t.digits = 2;
    r.tables.push_back(std::move(t));
  }
  r.trust_rules.push_back("untrusted: the endpoints are not stationary for the objective dropout trains on (median "
                          "unbiased ‖g_p‖/‖θ‖ > " + fmt(max_grad) + ")");
  return r;
}

// ---- ols_early_stopping ------------------------------------------------------

/// Rows shown as text for a long m axis: 1, 2, 5, 10, 20, 50, ... and the last.
std::vector<bool> sparse_rows(const std::vector<double>& m) {
  std::vector<bool> show(m.size(), true);
  if (m.size() <= 20) return show;
  for (std::size_t i = 0; i < m.size(); ++i) {
    double x = m[i];
    while (x >= 10.0 && std::fmod(x, 10.0) == 0.0) x /= 10.0;
    show[i] = i + 1 == m.size() || x == 1.0 || x == 2.0 || x == 5.0;
  }
  return show;
}

/// Entry i of a distance band {mean_key, ci_low, ci_high}, marked when it is
/// no better than the zero baseline.
Cell band_cell(const json& band, std::size_t i, double baseline, const std::string& mean_key = "mean") {
  Cell c;
  c.value = num_at(band, mean_key, i);
  c.low = num_at(band, "ci_low", i);
  c.high = num_at(band, "ci_high", i);
  c.distance = true;
  c.trusted = !(c.value >= baseline);  // NaN baseline: no rule
  return c;
}

Report ols_report(const json& s) {
  Report r;
  const json& fixed = member(s, "fixed_iterate_distance_by_m");
  const json& variable = member(s, "variable_stop_distance_by_m");
  const json& boot = member(s, "bootstrap_distance_by_m");
  if (s.contains("stop_epoch")) r.facts.push_back({"canonical stop step", s.at("stop_epoch")});
  if (s.contains("fixed_iterate_rel_error"))
    r.facts.push_back({"‖Λ̂ − Λ(t)‖_F/‖Λ(t)‖_F from all fixed-iterate endpoints", s.at("fixed_iterate_rel_error")});
  if (s.contains("diag_retrain_max_abs_diff"))
    r.facts.push_back(
        {"max |θ' − θ| after retraining with the fitted diagonal penalty", s.at("diag_retrain_max_abs_diff")});
  if (variable.contains("stop_step_median"))
    r.facts.push_back({"variable stop steps (min / median / max)", fmt(num(variable, "stop_step_min")) + " / " +
                                                                       fmt(num(variable, "stop_step_median")) + " / " +
                                                                       fmt(num(variable, "stop_step_max"))});
  const double baseline = num(boot, "zero_baseline");
  if (!std::isnan(baseline)) r.facts.push_back({"‖Λ(t)‖_F (the distance of the estimate Λ̂ = 0)", baseline});
  const std::vector<double> m = numbers(fixed, "m").empty() ? numbers(boot, "m") : numbers(fixed, "m");
  if (!m.empty()) {
    Table t = titled("distance ‖Λ̂_m − Λ‖_F by pool size m: mean over pools [95% interval]", "m", {});
    std::vector<std::pair<const json*, std::string>> bands;
    if (!fixed.empty()) bands.push_back({&fixed, "fixed iterate"});
    if (!variable.empty()) bands.push_back({&variable, "variable stop"});
    if (!boot.empty())
      bands.push_back(
          {&boot, "bootstrap" + (std::isnan(num(boot, "noise_sd")) ? std::string()
                                                                   : " (σ = " + fmt(num(boot, "noise_sd")) + ")")});
    for (const auto& b : bands) t.columns.push_back(b.second);
    for (std::size_t i = 0; i < m.size(); ++i) {
      t.labels.push_back(fmt(m[i], 6));
      std::vector<Cell> row;
      for (const auto& b : bands) {
        const std::vector<double> bm = numbers(*b.first, "m");
        const auto at = std::find(bm.begin(), bm.end(), m[i]);
        row.push_back(at == bm.end() ? Cell{}
                                     : band_cell(*b.first, static_cast<std::size_t>(at - bm.begin()),
                                                 num(*b.first, "zero_baseline")));
      }
      t.rows.push_back(std::move(row));
    }
    t.in_text = sparse_rows(m);
    t.style = Style::interval;
    r.tables.push_back(std::move(t));
  }
  const json& trace = member(s, "lambda_trace");
  const std::vector<double> ts = numbers(trace, "t");
  if (!ts.empty()) {
    Table t = titled("scalar ridge λ along the GD path (closed form, Adam, theory tr(Λ(t))/p)", "t",
                     {"closed form", "Adam", "theory"});
    for (std::size_t i = 0; i < ts.size(); ++i) {
      t.labels.push_back(fmt(ts[i], 6));
      Cell a, b, c;
      a.value = num_at(trace, "closed", i);
      b.value = num_at(trace, "iterative", i);
      c.value = num_at(trace, "theory", i);
      t.rows.push_back({a, b, c});
    }
    r.tables.push_back(std::move(t));
  }
  const json& sweep = member(s, "sigma_sweep");
  const std::vector<double> sig = numbers(sweep, "sigma");
  if (!sig.empty()) {
    Table t = titled("bootstrap recovery against the noise level σ: distance [95% interval]", "σ",
                     {"distance", "‖Λ(t)‖_F (zero baseline)"});
    for (std::size_t i = 0; i < sig.size(); ++i) {
      t.labels.push_back(fmt(sig[i], 6));
      const double base = num_at(sweep, "zero_baseline", i);
      const Cell d = band_cell(sweep, i, base, "distance");
      Cell b;
      b.value = base;
      t.rows.push_back({d, b});
    }
    t.style = Style::interval;
    r.tables.push_back(std::move(t));
  }
  r.trust_rules.push_back("no better than the estimate Λ̂ = 0: the distance is at least ‖Λ(t)‖_F");
  return r;
}

// ---- IGR studies -------------------------------------------------------------

// Trust rule of a gradient-penalty fit: finite, and the column explains most
// of the target (residual ratio ≤ 0.5, i.e. cosine ≥ 0.87); a run that
// diverged or was not kept is never trusted.
constexpr double kIgrMaxResidual = 0.5;

/// A run's status as a word ("" when it has none): a string as given, or the
/// code 0 ok, 1 below_threshold (train accuracy), 2 diverged.
std::string run_status(const json& run) {
  if (!run.is_object() || !run.contains("status")) return "";
  const json& s = run.at("status");
  if (s.is_string()) return s.get<std::string>();
  if (!s.is_number()) return "";
  const double code = s.get<double>();
  return code == 0.0 ? "ok" : code == 1.0 ? "below_threshold" : code == 2.0 ? "diverged" : "status " + s.dump();
}

/// o[key] is true or a non-zero number.
bool flag(const json& o, const std::string& key) {
  if (!o.is_object() || !o.contains(key)) return false;
  const json& v = o.at(key);
  return v.is_boolean() ? v.get<bool>() : v.is_number() && v.get<double>() != 0.0;
}

bool igr_run_trusted(const json& run) {
  if (run.contains("trusted") && run.at("trusted").is_boolean()) return run.at("trusted").get<bool>();
  const std::string status = run_status(run);
  if (!status.empty() && status != "ok") return false;
  if (flag(run, "diverged")) return false;
  const double ratio = num(run, "ratio");
  const double resid =
      std::isnan(num(run, "residual_ratio")) ? num(run, "residual_ratio_mean") : num(run, "residual_ratio");
  return std::isfinite(ratio) && resid <= kIgrMaxResidual;
}

std::string igr_rule() {
  return "not trusted: the run diverged or was not kept, λ is not finite, or the residual ratio of the "
         "gradient-penalty fit exceeds " +
         fmt(kIgrMaxResidual);
}

Report igr_synthetic_report(const json& s) {
  Report r;
  const auto cells = records(s, "cells");
  const auto runs = records(s, "runs");
  if (s.contains("steps")) r.facts.push_back({"GD steps per run (rows of each fit)", s.at("steps")});
  const json& ref = member(s, "reference");
  if (!ref.empty())
    r.facts.push_back(
        {"reference flow", text_of(ref, "integrator") + ", " + text_of(ref, "substeps") + " substeps per step"});
  const auto etas = axis(cells, "eta");
  const auto ps = axis(cells, "p");
  std::vector<std::string> cols;
  for (double p : ps) cols.push_back("p = " + fmt(p, 6));
  Table t = grid(
      "λ estimate / (ηp/4), mean over seeds (min to max)", "η", cells, etas, row_is("eta"), cols, col_is("p", ps),
      [&](const std::vector<json>& in) {
        Cell c;
        c.value = num(in[0], "ratio_mean");
        c.low = num(in[0], "ratio_min");
        c.high = num(in[0], "ratio_max");
        c.trusted = igr_run_trusted(json{{"ratio", c.value}, {"residual_ratio", num(in[0], "residual_ratio_mean")}});
        if (flag(in[0], "diverged")) c.trusted = false;
        for (const json& run : runs)
          if (num(run, "eta") == num(in[0], "eta") && num(run, "p") == num(in[0], "p") && !igr_run_trusted(run))
            c.trusted = false;
        return c;
      });
  t.style = Style::range;
  t.digits = 4;
  r.tables.push_back(std::move(t));
  Table res = grid("residual ratio of the fit, mean over seeds", "η", cells, etas, row_is("eta"), cols, col_is("p", ps),
                   [](const std::vector<json>& in) {
                     Cell c;
                     c.value = num(in[0], "residual_ratio_mean");
                     return c;
                   });
  res.digits = 2;
  r.tables.push_back(std::move(res));
  // On this quadratic the exact ratio is the spectral finite-step factor.
  Table exact = grid("largest |ratio - spectral finite-step factor| over seeds (0 up to the reference flow's error)",
                     "η", runs, etas, row_is("eta"), cols, col_is("p", ps), [](const std::vector<json>& in) {
                       Cell c;
                       c.value = 0.0;
                       for (const json& run : in) {
                         const double gap = std::abs(num(run, "ratio") - num(run, "finite_step_factor_spectral"));
                         if (std::isnan(gap)) {  // diverged, or written before the factor existed
                           c.value = gap;
                           c.text = "n/a";
                           break;
                         }
                         c.value = std::max(c.value, gap);
                       }
                       return c;
                     });
  exact.digits = 2;
  r.tables.push_back(std::move(exact));
  r.trust_rules.push_back(igr_rule());
  return r;
}

Report long_horizon_report(const json& s) {
  Report r;
  if (s.contains("steps")) r.facts.push_back({"GD steps", s.at("steps")});
  Table t = titled("distance of GD from the gradient flow and from the modified flow after the last step", "η",
                   {"‖θ_GD − θ_flow‖", "‖θ_GD − θ_modified‖", "ratio", "4η/3 (S = I)"});
  for (const json& run : records(s, "runs")) {
    const double eta = num(run, "eta");
    t.labels.push_back(fmt(eta, 6));
    Cell a, b, c, d;
    a.value = num(run, "final_dist_flow");
    b.value = num(run, "final_dist_modified");
    c.value = num(run, "ratio");
    d.value = 4.0 * eta / 3.0;
    t.rows.push_back({a, b, c, d});
  }
  r.tables.push_back(std::move(t));
  return r;
}

Report bootstrap_report(const json& s) {
  Report r;
  r.facts.push_back({"replicates", s.value("replicates", json())});
  if (num(s, "diverged") > 0.0) r.facts.push_back({"diverged replicates (left out of the equations)", s.at("diverged")});
  std::string scope;
  for (const json& b : records(s, "scope"))
    scope += (scope.empty() ? "" : ", ") + text_of(b, "name") + " " + text_of(b, "shape");
  r.facts.push_back({"scope (p = " + fmt(num(s, "p_scope"), 12) + ")", scope});
  if (s.contains("warnings") && s.at("warnings").is_array())
    for (const json& w : s.at("warnings")) r.facts.push_back({"warning", w});
  Table t = titled("fits of the pooled equations (each Λ: fit_<family>.json)", "family",
                   {"residual ratio", "cosine", "rank / unknowns", "warnings"});
  const json& fits = member(s, "fits");
  for (auto it = fits.begin(); it != fits.end(); ++it) {
    const json& f = it.value();
    const std::size_t warnings = f.contains("warnings") && f.at("warnings").is_array() ? f.at("warnings").size() : 0;
    Cell ratio, cosine, rank, count;
    ratio.value = num(f, "residual_ratio");
    cosine.value = num(f, "cosine");
    rank.text = fmt(num(f, "rank"), 12) + " / " + fmt(num(f, "unknowns"), 12);
    count.text = std::to_string(warnings);
    ratio.trusted = cosine.trusted = warnings == 0;
    t.labels.push_back(it.key());
    t.rows.push_back({ratio, cosine, rank, count});
  }
  if (!t.rows.empty()) r.tables.push_back(std::move(t));
  r.trust_rules.push_back("the fit carries warnings (a family that explains little, a rank-deficient or "
                          "underdetermined design): its fit_<family>.json lists them");
  return r;
}

Report igr_calibration_report(const json& s) {
  Report r;
  const auto runs = records(s, "runs");
  if (!std::isnan(num(s, "runs_ok")))
    r.facts.push_back({"runs kept", fmt(num(s, "runs_ok"), 6) + " of " + std::to_string(runs.size())});
  if (s.contains("ratio_median"))
    r.facts.push_back({"median λ estimate / (ηp/4) over kept runs", s.at("ratio_median")});
  const auto etas = axis(runs, "eta");
  const auto widths = axis(runs, "width");
  std::vector<std::string> cols;
  for (double w : widths) cols.push_back("width " + fmt(w, 6));
  const auto make = [](const std::string& key) {
    return [key](const std::vector<json>& in) {
      Cell c;
      c.value = mean_of(in, key);
      for (const json& run : in)
        if (!igr_run_trusted(run)) c.trusted = false;
      if (std::isnan(c.value)) c.text = run_status(in[0]).empty() ? "n/a" : run_status(in[0]);
      return c;
    };
  };
  Table t = grid("λ estimate / (ηp/4) (mean over seeds; rows: step size, columns: width)", "η", runs, etas,
                 row_is("eta"), cols, col_is("width", widths), make("ratio"));
  t.digits = 3;
  r.tables.push_back(std::move(t));
  // What curvature predicts for that ratio: r at one average curvature, and
  // r over the Hessian's whole spectrum (exact on a quadratic).
  Table f = grid("finite-step factor r(η s_eff) (mean over seeds)", "η", runs, etas, row_is("eta"), cols,
                 col_is("width", widths), make("finite_step_factor"));
  f.digits = 3;
  r.tables.push_back(std::move(f));
  Table spectral = grid("spectral finite-step factor, r over H's spectrum along Hg (mean over seeds)", "η", runs, etas,
                        row_is("eta"), cols, col_is("width", widths), make("finite_step_factor_spectral"));
  spectral.digits = 3;
  r.tables.push_back(std::move(spectral));
  Table third = grid("third-order term, the leading part beyond any quadratic (mean over seeds)", "η", runs, etas,
                     row_is("eta"), cols, col_is("width", widths), make("third_order_term"));
  third.digits = 2;
  r.tables.push_back(std::move(third));
  Table acc = grid("test accuracy at the selected checkpoint (mean over seeds)", "η", runs, etas, row_is("eta"), cols,
                   col_is("width", widths), make("test_accuracy"));
  r.tables.push_back(std::move(acc));
  Table rig = grid("R_IG = ‖∇L‖²/p at the selected checkpoint (mean over seeds)", "η", runs, etas, row_is("eta"), cols,
                   col_is("width", widths), make("r_ig"));
  r.tables.push_back(std::move(rig));
  r.trust_rules.push_back(igr_rule());
  return r;
}

// ---- anything else: every key --------------------------------------------------

// One line per number; arrays as "[n values: first ... last]"; objects indented.
void print_items(std::ostream& os, const json& doc, const std::string& indent) {
  for (const auto& [key, value] : doc.items()) {
    if (key == "study") continue;
    if (value.is_object()) {
      os << indent << key << ":\n";
      print_items(os, value, indent + "  ");
    } else if (value.is_array() && value.size() > 4) {
      os << indent << key << ": [" << value.size() << " values: " << value.front().dump() << " ... "
         << value.back().dump() << "]\n";
    } else {
      os << indent << key << ": " << value.dump() << "\n";
    }
  }
}

const std::map<std::string, std::function<Report(const json&)>>& layouts() {
  static const std::map<std::string, std::function<Report(const json&)>> m{
      {"elastic_net", elastic_net_report},   {"dropout", dropout_report},  {"bootstrap", bootstrap_report},
      {"ols_early_stopping", ols_report},    {"igr_synthetic", igr_synthetic_report},
      {"long_horizon", long_horizon_report}, {"igr_calibration", igr_calibration_report}};
  return m;
}

std::string output_files(const std::filesystem::path& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files.push_back(entry.path().filename().string());
  std::sort(files.begin(), files.end());
  std::string out;
  for (const auto& f : files) out += (out.empty() ? "" : " ") + f;
  return out;
}

void print_damage_note(const std::filesystem::path& dir) {
  const auto damaged = io::damaged_outputs(dir);
  if (!damaged || damaged->empty()) return;
  std::string list;
  for (const std::string& d : *damaged) list += (list.empty() ? "" : ", ") + d;
  std::cout << "  note: " << list << "; run the study's command (run_info.json: created_by) on this "
              << "directory again to write its outputs from the run store" << std::endl;
}

/// A directory with a run store but no summary.json: a run that was stopped,
/// is still running, or ran with --tasks. How far it got, from store.h5.
void describe_unfinished_run(const std::filesystem::path& dir, bool as_json) {
  const io::RunStoreProgress p = io::inspect_run_store((dir / "store.h5").string());
  const std::int64_t diverged = p.diverged();
  if (as_json) {
    json tables = json::array();
    for (const auto& t : p.tables)
      tables.push_back({{"name", t.name}, {"tasks", t.rows}, {"done", t.done}, {"diverged", t.diverged}});
    std::cout << json{{"path", dir.string()},
                      {"study", p.study},
                      {"finished", false},
                      {"tasks", {{"total", p.rows()}, {"finished", p.finished()}, {"diverged", diverged}}},
                      {"tables", tables}}
                     .dump(2)
              << std::endl;
    return;
  }
  std::cout << dir.string() << ": " << p.study << ", not finished: " << p.finished() << " of " << p.rows()
            << " tasks done" << (diverged > 0 ? " (" + std::to_string(diverged) + " diverged)" : std::string()) << "\n";
  if (p.tables.size() > 1)
    for (const auto& t : p.tables)
      std::cout << "  table " << t.name << ": " << t.done + t.diverged << " of " << t.rows << " done\n";
  std::cout << "  no outputs yet: summary.json and results.h5 are written once every task is done, by a run still "
               "going on here or by the same 'gradmatch run CONFIG --out "
            << dir.string() << "' again (without --tasks, or with the tasks left); finished tasks are kept\n"
            << "  files: " << output_files(dir) << std::endl;
}

/// Whether a running gradmatch holds DIR/store.lock (its flock).
bool lock_is_held(const std::filesystem::path& lock) {
  const int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return held;
}

void describe_study(const std::filesystem::path& dir, bool as_json) {
  const auto summary = dir / "summary.json";
  std::error_code ec;
  if (std::filesystem::exists(summary, ec) && !std::filesystem::is_regular_file(summary, ec))
    throw InputError(summary.string() + ": is not a regular file (a pipe, socket or device); a study writes "
                                        "summary.json as a file: run the study again into a new --out");
  std::ifstream in(summary);
  if (!in && std::filesystem::exists(dir / "store.h5")) return describe_unfinished_run(dir, as_json);
  if (!in && lock_is_held(dir / "store.lock")) {
    // A run that is still creating its store (which fills the whole file first).
    if (as_json)
      std::cout << json{{"path", dir.string()}, {"finished", false}, {"starting", true}}.dump(2) << std::endl;
    else
      std::cout << dir.string() << ": a run is creating its run store here; no task is done yet\n";
    return;
  }
  if (!in)
    throw InputError(dir.string() +
                     ": no summary.json here; is this a finished study output directory? (run "
                     "'gradmatch run CONFIG --out " +
                     dir.string() + "' first)");
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::exception& e) {
    throw InputError(summary.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (!doc.is_object()) throw InputError(summary.string() + ": expected a JSON object with a \"study\" key");
  const std::string study = text_of(doc, "study").empty() ? "study" : text_of(doc, "study");
  const auto layout = layouts().find(study);
  if (layout == layouts().end()) {
    if (as_json) {
      std::cout << json{{"path", dir.string()}, {"study", study}, {"summary", doc}}.dump(2) << std::endl;
      return;
    }
    std::cout << dir.string() << ": " << study << "\n";
    print_items(std::cout, doc, "  ");
    std::cout << "  files: " << output_files(dir) << std::endl;
    print_damage_note(dir);
    return;
  }
  Report report = layout->second(doc);
  report.study = study;
  if (!text_of(doc, "gradmatch_version").empty())
    report.facts.insert(report.facts.begin(), {"written by gradmatch", text_of(doc, "gradmatch_version")});
  if (as_json) {
    std::cout << report_json(dir.string(), report, doc).dump(2) << std::endl;
    return;
  }
  print_report(std::cout, dir.string(), report);
  std::cout << "\n  files: " << output_files(dir) << "\n  every number: " << (dir / "summary.json").string()
            << " and results.h5; this report as JSON: gradmatch report " << dir.string() << " --json" << std::endl;
  print_damage_note(dir);
}

void describe_equation_file(const std::string& path, bool as_json) {
  const io::EquationFileInfo info = io::inspect_equation_file(path);
  // The values too (finite, weights >= 0), as `gradmatch fit` checks them,
  // unless reading them all would take more than 1 GiB.
  const double bytes = 8.0 * static_cast<double>(info.m) * static_cast<double>(info.p) *
                       (2.0 + (info.has_target ? 1.0 : 0.0) + static_cast<double>(info.features.size()));
  const bool values_checked = bytes <= 1024.0 * 1024.0 * 1024.0;
  if (values_checked) io::read_equation_file(path);  // InputError naming the point and column
  if (as_json) {
    std::cout << json{{"path", path},
                      {"format", "gradmatch.equations"},
                      {"version", 1},
                      {"points", info.m},
                      {"parameters", info.p},
                      {"target", info.has_target},
                      {"weights", info.has_weights},
                      {"features", info.features},
                      {"values_checked", values_checked}}
                     .dump(2)
              << std::endl;
    return;
  }
  std::cout << path << ": gradmatch equation file, version 1\n"
            << "  points m = " << info.m << ", parameters p = " << info.p << "\n"
            << "  target: " << (info.has_target ? "explicit 'target' dataset" : "b = -grad_loss") << "\n"
            << "  weights: " << (info.has_weights ? "per-point 'weights'" : "none (all 1)") << "\n"
            << "  features: ";
  if (info.features.empty()) std::cout << "none";
  for (std::size_t i = 0; i < info.features.size(); ++i) std::cout << (i ? ", " : "") << info.features[i];
  std::cout << "\n  values: "
            << (values_checked ? "finite, weights non-negative"
                               : "not read (more than 1 GiB; gradmatch fit checks them as it reads them)")
            << std::endl;
}

}  // namespace

int report_command(const ReportArgs& args, const mpi::Communicator& comm) {
  try {
    mpi::collective(comm, [&] {
      if (!comm.is_root()) return;
      const std::filesystem::path path(args.path);
      const std::string file = path.filename().string();
      if (std::filesystem::is_directory(path))
        describe_study(path, args.json);
      else if (file == "summary.json" || file == "results.h5" || file == "run_info.json" || file == "store.h5")
        throw InputError(text::cat(args.path, ": ", file, " is one of a study's outputs; report reads the study's directory: "
                             "gradmatch report ", path.parent_path().empty() ? std::string(".") : path.parent_path().string()));
      else if (std::filesystem::exists(path))
        describe_equation_file(args.path, args.json);
      else
        throw InputError(args.path + ": no such file or directory");
    });
    return 0;
  } catch (const std::exception& e) {
    return report_failure("report", e, comm, args.path);
  }
}

}  // namespace gradmatch::cli
