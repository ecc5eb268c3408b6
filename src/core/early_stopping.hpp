#pragma once
// The one early-stopping rule: PyTorch Lightning's EarlyStopping callback,
// mode "min", check_finite on. Both the OLS simulator (core/ols.hpp) and the
// LibTorch trainers (training/trainer.hpp) feed it one monitored value per
// epoch.
//
//   best starts at +inf, wait at 0;
//   a finite value is an improvement iff value < best - min_delta
//     (strict): best = value, wait = 0; otherwise wait += 1;
//   update() returns true (stop) once wait >= patience;
//   a non-finite value (NaN, +-inf) stops at once: it is no improvement and
//     leaves best and wait as they were (Lightning's check_finite).
#include <cmath>
#include <cstdint>
#include <limits>

namespace gradmatch {

class EarlyStoppingRule {
 public:
  EarlyStoppingRule(std::int64_t patience, double min_delta) : patience_(patience), min_delta_(min_delta) {}

  /// Forgets every value fed so far.
  void reset() {
    best_ = std::numeric_limits<double>::infinity();
    wait_ = 0;
    count_ = 0;
    best_count_ = 0;
    improved_ = false;
    non_finite_ = false;
  }

  /// Feeds the next monitored value; true means stop.
  bool update(double value) {
    ++count_;
    improved_ = false;
    if (!std::isfinite(value)) {
      non_finite_ = true;
      return true;
    }
    if (value < best_ - min_delta_) {
      improved_ = true;
      best_ = value;
      best_count_ = count_;
      wait_ = 0;
      return false;
    }
    ++wait_;
    return wait_ >= patience_;
  }

  std::int64_t patience() const { return patience_; }
  double min_delta() const { return min_delta_; }
  double best() const { return best_; }        ///< +inf before the first improvement
  std::int64_t wait() const { return wait_; }  ///< values since the last improvement
  bool improved() const { return improved_; }  ///< the last value was an improvement
  /// The number of the value (1, 2, ...) that set best; 0 before any.
  std::int64_t best_count() const { return best_count_; }
  /// True once a non-finite value stopped the rule.
  bool stopped_on_non_finite() const { return non_finite_; }

 private:
  std::int64_t patience_;
  double min_delta_;
  double best_ = std::numeric_limits<double>::infinity();
  std::int64_t wait_ = 0;
  std::int64_t count_ = 0;
  std::int64_t best_count_ = 0;
  bool improved_ = false;
  bool non_finite_ = false;
};

}  // namespace gradmatch
