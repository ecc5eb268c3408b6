#include "studies/study.hpp"


#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <charconv>
#include <stdexcept>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/resources.hpp"
#include "distributed/placement.hpp"
#include "distributed/task_farm.hpp"
#include "io/config.hpp"
#include "io/json_output.hpp"
#include "io/provenance.hpp"
#include "io/run_store.hpp"
#include "studies/estimate.hpp"
#include "training/device.hpp"
#include "training/idx.hpp"

namespace gradmatch::studies {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

nlohmann::json stage_json(const distributed::FarmStats& s) {
  return {{"tasks", s.items},
          {"wall_seconds", s.wall_seconds},
          {"tasks_per_rank", s.done_per_rank},
          {"busy_seconds_per_rank", s.busy_per_rank},
          {"cpu_seconds_per_rank", s.cpu_per_rank},
          {"efficiency", s.efficiency()},
          {"diverged", s.diverged}};
}

/// The rank's device from the config's `device` key: "cpu", "cuda" (an
/// InputError when LibTorch sees no GPU) or "auto" (CUDA when it sees one),
/// the GPU count from LibTorch (training/device.hpp). The BLAS and LibTorch's
/// intra-op pool get the rank's thread count.
StudyContext configure_context(const mpi::Communicator& comm, const std::string& config_path,
                               const std::string& requested) {
  const std::string what = cat(config_path, ": key 'device'");
  const training::ComputeDevice compute =
      training::configure_compute(training::parse_device_request(requested, what), comm.local_rank(),
                                  comm.local_size(), distributed::threads_from_environment(), what);
  StudyContext context;
  context.comm = &comm;
  context.rank = {compute.assignment, distributed::apply_cpu_threads(compute.assignment.threads)};
  context.device = compute.device;
  context.description = compute.description;
  return context;
}

constexpr const char* kRunInfo = "run_info.json";

}  // namespace

std::string device_request_for(const Study& study, const std::string& name, io::ConfigReader& reader) {
  const std::string requested = reader.get_choice(kDeviceKey, "auto", device_choices());
  if (study.uses_libtorch()) return requested;
  if (requested == "cuda")
    throw InputError(cat(reader.where(kDeviceKey), ": device = \"cuda\", but ", name,
                         " computes on the CPU only (its numerics are gradmatch's own, without LibTorch); write "
                         "device = \"cpu\" or \"auto\", which run it on the CPU"));
  return "cpu";
}

std::string small_model_note(double model_parameters, bool on_gpu) {
  if (!on_gpu || !(model_parameters > 0) || model_parameters >= kSmallModelParameters) return {};
  return cat("note: the models have ", resources::count_text(model_parameters),
             " parameters; a GPU runs a model this small at the pace of its kernel launches (the smoke studies' "
             "models of 600 to a few thousand parameters ran 15-70x slower on an NVIDIA H200 than on one CPU core): "
             "device = \"cpu\" with more ranks is likely faster (docs/gpu.md, \"Small models belong on the CPU\")");
}

namespace {

/// Removes what an interrupted writer left in DIR: `NAME.tmp-PID` files of
/// the atomic JSON and equation-file writers and `NAME.partial` results files
/// (not the run store's). Returns how many.
int remove_leftovers(const std::filesystem::path& dir) {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const std::size_t tmp = name.rfind(".tmp-");
    const bool writer_tmp = tmp != std::string::npos && tmp + 5 < name.size() &&
                            name.find_first_not_of("0123456789", tmp + 5) == std::string::npos;
    const bool partial = name.ends_with(".partial") && !name.starts_with("store.h5");
    if ((writer_tmp || partial) && entry.is_regular_file(ec) && std::filesystem::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

/// Rank 0's message when SIGINT or SIGTERM stops a run: finished tasks are
/// in the store and the same command resumes. Only async-signal-safe calls.
char interrupted_message[1024];
void on_interrupt(int signal) {
  const ssize_t written = ::write(STDERR_FILENO, interrupted_message, std::strlen(interrupted_message));
  (void)written;
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

/// Installs on_interrupt for the lifetime of the run; restores on exit.
class InterruptNotice {
 public:
  InterruptNotice(bool active, const std::string& out_dir) : active_(active) {
    if (!active_) return;
    std::snprintf(interrupted_message, sizeof interrupted_message,
                  "\ngradmatch: interrupted. Finished tasks are kept in %s/store.h5; run the same command again to "
                  "resume.\n",
                  out_dir.c_str());
    previous_int_ = std::signal(SIGINT, on_interrupt);
    previous_term_ = std::signal(SIGTERM, on_interrupt);
  }
  ~InterruptNotice() {
    if (!active_) return;
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
  }
  InterruptNotice(const InterruptNotice&) = delete;
  InterruptNotice& operator=(const InterruptNotice&) = delete;

 private:
  bool active_;
  void (*previous_int_)(int) = SIG_DFL;
  void (*previous_term_)(int) = SIG_DFL;
};

/// The tasks whose own files (Study::task_files) a re-run must write again:
/// missing while the store exists, or of another size than run_info.json
/// recorded.
std::vector<io::RunStoreSpec::Redo> task_files_to_redo(const Study& study, const std::filesystem::path& dir) {
  std::vector<io::RunStoreSpec::Redo> out;
  std::error_code ec;
  if (!std::filesystem::exists(dir / "store.h5", ec)) return out;
  const nlohmann::json sizes = io::recorded_output_bytes(dir);
  for (const Study::TaskFile& f : study.task_files())
    if (const std::string what = io::output_damage(dir, f.name, sizes); !what.empty())
      out.push_back({f.table, f.row, cat("its file ", f.name, " is ", what)});
  return out;
}

/// Whether DIR holds run_info.json and every output it lists.
bool outputs_complete(const std::filesystem::path& dir) {
  // Each recorded output exists and, where run_info.json records its size,
  // has it: a truncated copy (a full disk, an interrupted rsync) is rewritten.
  const auto damaged = io::damaged_outputs(dir);
  return damaged && damaged->empty();
}

/// "running the selected tasks: 6 (width 1600, eta 0.1, seed 0), 7 (...)"
/// and which of them an earlier run already did; at most 8 named.
std::string selection_line(const std::vector<std::int64_t>& selection, const std::vector<std::string>& labels,
                           const std::vector<TaskTable>& tables, const io::RunStore& store) {
  std::vector<char> pending;
  for (std::size_t t = 0; t < tables.size(); ++t) {
    std::vector<char> p(tables[t].ids.size(), 0);
    for (const std::int64_t row : store.pending(t)) p[static_cast<std::size_t>(row)] = 1;
    pending.insert(pending.end(), p.begin(), p.end());
  }
  std::string run, done;
  std::int64_t n_run = 0, n_done = 0;
  constexpr std::int64_t kNamed = 8;
  for (const std::int64_t k : selection) {
    const bool todo = pending[static_cast<std::size_t>(k)] != 0;
    std::string& list = todo ? run : done;
    std::int64_t& n = todo ? n_run : n_done;
    if (n < kNamed) {
      list += cat(list.empty() ? "" : ", ", std::to_string(k + 1));
      if (!labels.empty()) list += cat(" (", labels[static_cast<std::size_t>(k)], ")");
    } else if (n == kNamed) {
      list += ", ...";
    }
    ++n;
  }
  std::string line = n_run > 0 ? cat("running ", std::to_string(n_run), " selected task(s): ", run)
                               : std::string("nothing to run: the selected tasks are done");
  if (n_done > 0) line += cat("; already done: ", done);
  return line;
}

}  // namespace

std::string OutputDir::path(const std::string& file) {
  if (std::find(files_.begin(), files_.end(), file) == files_.end()) files_.push_back(file);
  return (dir_ / file).string();
}

void config_error(const io::ConfigReader& reader, const std::string& key, const std::string& what) {
  throw InputError(cat(reader.where(key), ": ", what));
}

void check_input_file(const io::ConfigReader& reader, const std::string& key, const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    config_error(reader, key, cat(path, " does not exist; check the path"));
  if (!std::filesystem::is_regular_file(path, ec)) config_error(reader, key, cat(path, " is not a file"));
}

training::IdxCounts check_idx_directory(const io::ConfigReader& reader, const std::string& key, const std::string& dir,
                                        bool test) {
  // The reader's messages start with the folder; a path longer than any file
  // system allows is shown clipped, the rest of the message whole.
  const auto reason = [&](const InputError& e) {
    constexpr std::size_t kLongestPath = 1024;  // longer than any real dataset path
    std::string text = e.what();
    if (text.compare(0, dir.size(), dir) == 0) text = cat(text::clip(dir, kLongestPath), text.substr(dir.size()));
    return text;
  };
  try {
    training::find_idx_files(dir, training::IdxPart::train);
    if (test) training::find_idx_files(dir, training::IdxPart::test);
  } catch (const InputError& e) {
    config_error(reader, key,
                 cat(reason(e), "; install Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) or point ",
                     key, " at an MNIST-format directory"));
  }
  try {
    return training::idx_counts(dir, test);  // the headers only: cheap enough for every --dry-run
  } catch (const InputError& e) {
    config_error(reader, key, reason(e));
  }
}

void add_idx_inputs(std::vector<std::pair<std::string, std::string>>& out, const std::string& key,
                    const std::string& dir, bool test) {
  for (const training::IdxPart part : {training::IdxPart::train, training::IdxPart::test}) {
    if (part == training::IdxPart::test && !test) break;
    const training::IdxFiles files = training::find_idx_files(dir, part);
    for (const std::string& f : {files.images, files.labels})
      out.emplace_back(cat(key, "/", std::filesystem::path(f).filename().string()), f);
  }
}

std::uint64_t read_study_seed(io::ConfigReader& reader, const char* study, std::uint64_t fallback) {
  const std::string name = reader.get_string("study");
  if (name != study) config_error(reader, "study", cat("this reader is for study \"", study, "\", not \"", text::clip(name), "\""));
  reader.get_choice(kDeviceKey, "auto", device_choices());
  return static_cast<std::uint64_t>(reader.get_int("seed", static_cast<std::int64_t>(fallback), 0,
                                                   std::numeric_limits<std::int64_t>::max()));
}

std::string short_number(double value) {
  char buffer[32];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buffer, sizeof buffer, "%.*g", digits, value);
    if (std::stod(buffer) == value) break;
  }
  return buffer;
}

std::string label_number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6g", value);
  return buffer;
}

std::vector<std::int64_t> parse_task_selection(const std::string& text, std::int64_t total) {
  const std::string how = "give task numbers as `gradmatch run CONFIG --out DIR --dry-run` lists them, e.g. 6 or 1-3,7";
  const auto number = [&](std::string_view part, const std::string& whole) {
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || part.front() < '0' || part.front() > '9' || ec != std::errc() || end != part.data() + part.size())
      throw InputError(cat("--tasks: '", text::clip(whole), "' is not a task number or a range a-b; ", how));
    if (v < 1 || v > total)
      throw InputError(cat("--tasks: task ", text::clip(std::string(part)), " does not exist: this run has ",
                           std::to_string(total), total == 1 ? " task, number 1" : " tasks, numbered 1-" + std::to_string(total),
                           " (--dry-run lists them)"));
    return v - 1;
  };
  std::vector<std::int64_t> out;
  std::size_t begin = 0;
  while (true) {
    const std::size_t comma = text.find(',', begin);
    std::string part = text.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
    part.erase(0, part.find_first_not_of(" \t"));
    part.erase(part.find_last_not_of(" \t") + 1);
    if (part.empty()) throw InputError(cat("--tasks: '", text::clip(text), "' has an empty entry; ", how));
    const std::size_t dash = part.find('-', 1);
    if (dash == std::string::npos) {
      out.push_back(number(part, part));
    } else {
      const std::int64_t first = number(std::string_view(part).substr(0, dash), part);
      const std::int64_t last = number(std::string_view(part).substr(dash + 1), part);
      if (last < first)
        throw InputError(cat("--tasks: the range '", part, "' runs backwards; write ", std::to_string(last + 1), "-",
                             std::to_string(first + 1)));
      for (std::int64_t k = first; k <= last; ++k) out.push_back(k);
    }
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string input_digest_lines(const Study& study) {
  std::map<std::string, std::string> lines;
  for (const auto& [key, path] : study.input_files()) lines[key] = io::file_digest(path);
  std::string out;
  for (const auto& [key, digest] : lines) out += cat(key, " = ", nlohmann::json(digest).dump(), "\n");
  return out;
}

void run_study(Study& study, const std::string& name, const std::string& config_path, const std::string& out_dir,
               const mpi::Communicator& comm, const RunOptions& options) {
  using mpi::collective;
  const auto t0 = Clock::now();
  const bool root = comm.is_root();
  const auto say = [&](const std::string& line) {
    if (root) std::fprintf(stderr, "%s: %s\n", name.c_str(), line.c_str());
  };

  // 1. Every rank: the device first (the thread count changes the last bits
  //    of every product), then the config and the shared inputs. Nothing is
  //    written unless all of it succeeds on every rank.
  StudyContext context;
  std::string effective, defaults;
  std::vector<TaskTable> tables;
  std::vector<std::string> labels;                    // study.task_labels(): one per task, or none
  std::optional<std::vector<std::int64_t>> selection;  // --tasks: 0-based task indices
  double shared_s = 0.0;
  double model_parameters = -1;                       // study.estimate()'s
  collective(comm, [&] {
    io::ConfigReader peek(config_path);
    context = configure_context(comm, config_path, device_request_for(study, name, peek));
    context.out_dir = out_dir;
  });
  collective(comm, [&] {
    io::ConfigReader reader(config_path);
    study.configure(reader);
    reader.finish();
    effective = reader.effective();
    defaults = reader.defaults();
    const ResourceEstimate estimate = study.estimate();
    check_estimate(estimate, config_path, out_dir, comm.local_size());  // before prepare() allocates
    model_parameters = estimate.model_parameters;
    const auto t = Clock::now();
    study.prepare(context);
    shared_s = seconds_since(t);
    tables = study.tables();
    std::int64_t total = 0;
    for (const TaskTable& table : tables) total += static_cast<std::int64_t>(table.ids.size());
    labels = study.task_labels();
    if (!labels.empty() && static_cast<std::int64_t>(labels.size()) != total)
      throw std::logic_error(cat(name, ": task_labels() gives ", std::to_string(labels.size()), " labels for ",
                                 std::to_string(total), " tasks"));
    if (!options.tasks.empty()) selection = parse_task_selection(options.tasks, total);
    check_store_size(tables, config_path, out_dir);
  });
  if (const std::string line = study.describe(); !line.empty()) say(line);
  if (const std::string note = small_model_note(model_parameters, context.device.is_cuda());
      !note.empty())
    say(note);
  // Where each rank may run, for run_info.json, and a warning where a host's
  // ranks compute with more threads than the cores they may use.
  std::vector<distributed::RankPlacement> placement;
  collective(comm, [&] { placement = distributed::gather_placement(comm, context.rank.device.threads); });
  for (const std::string& line : distributed::crowded_hosts(placement)) say(cat("warning: ", line));
  // The selection as rows per table (global task k is table t's row k - offset(t)).
  std::vector<std::vector<std::int64_t>> selected_rows(tables.size());
  if (selection) {
    std::int64_t offset = 0;
    std::size_t k = 0;
    for (std::size_t t = 0; t < tables.size(); ++t) {
      const auto rows = static_cast<std::int64_t>(tables[t].ids.size());
      for (; k < selection->size() && (*selection)[k] < offset + rows; ++k) selected_rows[t].push_back((*selection)[k] - offset);
      offset += rows;
    }
  }

  // 2. The run store: one table per task table, rows in table order.
  io::RunStoreSpec spec{name, effective, defaults, {}};
  for (const TaskTable& t : tables) spec.tables.push_back({t.name, t.width, t.ids});
  collective(comm, [&] {  // rank 0 reads the inputs once; every rank compares the same text
    spec.inputs = comm.broadcast(root ? input_digest_lines(study) : std::string());
    if (root) spec.redo = task_files_to_redo(study, std::filesystem::path(out_dir));  // rank 0 decides them
  });
  const std::string commit(build_info::git_commit());
  spec.compute = cat("gradmatch ", commit.empty() ? std::string(build_info::version) : commit, ", ", context.description);
  std::unique_ptr<io::RunStore> store;
  collective(comm, [&] { store = std::make_unique<io::RunStore>(comm.get(), out_dir, spec); });

  const std::filesystem::path dir(out_dir);
  const bool outputs_present = comm.broadcast(root && outputs_complete(dir) ? "1" : "0") == "1";
  if (store->complete_at_open() && outputs_present) {
    store->close();
    if (root) std::fprintf(stderr, "gradmatch: nothing to do: %s is complete\n", out_dir.c_str());
    return;
  }
  const std::int64_t total = store->total_rows(), resumed = store->finished_at_open();
  if (resumed > 0)
    say(cat("resuming ", out_dir, ": ", std::to_string(resumed), " of ", std::to_string(total),
            " tasks already done (attempt ", std::to_string(store->attempt()), ")"));
  for (const std::string& line : store->reopened()) say(cat("running again ", line));
  if (!store->made_with().empty() && store->made_with() != spec.compute)
    say(cat("warning: the run store's rows so far were computed with ", store->made_with(), "; this run computes with ",
            spec.compute, ": the outputs can differ in the last bits from those of an uninterrupted run"));
  if (!store->keys_added().empty()) {
    std::string keys;
    for (const std::string& k : store->keys_added()) keys += cat(keys.empty() ? "" : ", ", k);
    say(cat("the run store predates the config key(s) ", keys,
            "; each is at its default, which is what the gradmatch that made the store did"));
  }
  if (root)
    if (const int removed = remove_leftovers(dir); removed > 0)
      say(cat("removed ", std::to_string(removed), " half-written output file(s) of an interrupted run"));
  const InterruptNotice notice(root, out_dir);
  if (selection) say(selection_line(*selection, labels, tables, *store));

  // 3. The task farm, one stage per table; each result lands in the store.
  auto t = Clock::now();
  std::vector<distributed::FarmStats> stages;
  for (std::size_t k = 0; k < tables.size(); ++k) {
    distributed::FarmOptions farm;
    if (selection) farm.only_rows = selected_rows[k];
    farm.row_costs = tables[k].costs;
    stages.push_back(
        distributed::farm_table(comm, *store, k, [&](std::int64_t row) { return study.compute(k, row); }, farm));
  }
  const double tasks_s = seconds_since(t);
  if (selection) {
    // The outputs need every row: with tasks still pending, stop here.
    std::int64_t finished = resumed;
    for (const distributed::FarmStats& s : stages) finished += s.items;
    if (finished < total) {
      say(cat(std::to_string(finished), " of ", std::to_string(total), " tasks are done (", distributed::clock_time(tasks_s),
              " this run); the outputs are written once every task is done: run the same command without --tasks, or "
              "with the tasks left"));
      store->close();
      return;
    }
  }

  // 4. Rank 0 reads every row back (this run's and earlier runs').
  std::vector<std::vector<double>> rows(tables.size());
  std::map<std::int32_t, std::int64_t> by_attempt;
  std::int64_t diverged = 0;
  collective(comm, [&] {
    if (!root) return;
    for (std::size_t k = 0; k < tables.size(); ++k) {
      rows[k] = store->read_data(k);
      const std::vector<io::TaskStatus> status = store->read_status(k);
      const std::vector<std::int32_t> attempts = store->read_attempts(k);
      for (std::size_t row = 0; row < status.size(); ++row) {
        if (status[row] == io::TaskStatus::pending)
          throw std::runtime_error(cat(store->path(), ": row ", std::to_string(row), " of table '",
                                       store->table_name(k), "' is still pending after the farm"));
        if (status[row] == io::TaskStatus::diverged) ++diverged;
        ++by_attempt[attempts[row]];
      }
    }
  });
  const std::int32_t attempt = store->attempt();
  const std::string store_fingerprint = store->fingerprint(), made_with = store->made_with();
  const std::vector<std::string> devices = comm.gather(context.description);
  std::vector<std::string> hosts, cores;
  for (const distributed::RankPlacement& r : placement) {
    hosts.push_back(r.host);
    cores.push_back(distributed::cpu_list_text(r.cpus));
  }

  // 5. Every rank: the study's collective step (a distributed solve over
  //    the rows rank 0 holds, for instance).
  t = Clock::now();
  collective(comm, [&] { study.collective_step(context, rows); });
  const double collective_s = seconds_since(t);

  // 6. Rank 0 writes the outputs, each atomically, run_info.json last.
  collective(comm, [&] {
    if (!root) return;
    t = Clock::now();
    say(cat("writing ", out_dir));
    OutputDir out(dir);
    nlohmann::json extra = study.write(rows, out);
    const double write_s = seconds_since(t);
    const std::optional<Study::TrainingCount> trainings = study.count_trainings(rows);

    nlohmann::json attempts = nlohmann::json::object();
    for (const auto& [a, n] : by_attempt) attempts[std::to_string(a)] = n;
    nlohmann::json stage_info = nlohmann::json::object();
    std::int64_t run_now = 0;
    for (std::size_t k = 0; k < stages.size(); ++k) {
      stage_info[tables[k].name] = stage_json(stages[k]);
      run_now += stages[k].items;
    }
    nlohmann::json output_bytes = nlohmann::json::object();
    for (const std::string& f : out.files()) {
      std::error_code ec;
      const std::uintmax_t bytes = std::filesystem::file_size(dir / f, ec);
      if (!ec) output_bytes[f] = bytes;  // a file without a size is checked for existence only
    }
    std::error_code cwd_error;
    const std::filesystem::path cwd = std::filesystem::current_path(cwd_error);
    nlohmann::json info = {
        {"study", name},
        // Where the run was started: created_by's relative paths are relative to it.
        {"working_directory", cwd_error ? std::string() : cwd.string()},
        {"outputs", out.files()},
        {"output_bytes", output_bytes},
        {"ranks", comm.size()},
        {"hosts", hosts},
        {"devices", devices},
        {"cores", cores},
        {"blas", context.rank.blas},
        {"store", {{"attempt", attempt}, {"fingerprint", store_fingerprint}, {"made_with", made_with}}},
        {"tasks",
         {{"total", total}, {"resumed", resumed}, {"run", run_now}, {"diverged", diverged}, {"by_attempt", attempts}}},
        {"stages", stage_info},
        {"wall_seconds",
         {{"shared", shared_s},
          {"tasks", tasks_s},
          {"collective", collective_s},
          {"write", write_s},
          {"total", seconds_since(t0)}}}};
    if (trainings) info["trainings"] = {{"total", trainings->total}, {"diverged", trainings->diverged}};
    for (const auto& [key, value] : io::provenance()) info[key] = value;
    if (extra.is_object())
      for (auto it = extra.begin(); it != extra.end(); ++it) info[it.key()] = it.value();
    io::write_json_file((dir / kRunInfo).string(), info);
    std::string files;
    for (const std::string& f : out.files()) files += (files.empty() ? "" : ", ") + f;
    std::string next = cat("\n  next: ", options.program, " report ", out_dir, "   (tables)");
    if (study.has_figures())
      next += cat("\n        /usr/bin/python3 scripts/plot_", name, ".py ", out_dir, "   (figures, from the source tree)");
    const double total_s = seconds_since(t0);
    // A task of several networks is stored as diverged when one of them
    // did: the warning then counts networks, and says "no estimate" only
    // when every network diverged.
    const std::string no_estimate = ": the outputs hold no estimate; lower the learning rate (or check the inputs)";
    const std::string recorded = " and are recorded as such in the outputs";
    if (trainings && trainings->diverged > 0)
      say(cat("warning: ", std::to_string(trainings->diverged), " of ", std::to_string(trainings->total),
              " networks diverged (in ", std::to_string(diverged), " of ", std::to_string(total), " tasks)",
              trainings->diverged == trainings->total ? no_estimate : recorded, " (run_info.json: trainings.diverged)"));
    else if (diverged > 0)
      say(cat("warning: ", std::to_string(diverged), " of ", std::to_string(total), " tasks diverged",
              diverged == total && !trainings ? no_estimate : recorded, " (run_info.json: tasks.diverged)"));
    say(cat("done in ", distributed::clock_time(std::round(total_s)), " (", short_number(std::round(total_s * 10.0) / 10.0),
            " s). Outputs in ", out_dir, ": ", files, ", run_info.json", next));
  });
  // Closed last: its lock keeps a concurrent run off DIR until the outputs are written.
  store->close();
}

}  // namespace gradmatch::studies
