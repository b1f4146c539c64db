// The flow graph, built in one place (build_graph), and the consumer side.
//
//   tickets --> [entry: queue] --> [inflight: limiter] --> [load: decode + annotations]
//       --> [augment: extract, transform, place, composite] --> [prepare: resize, flip, normalise]
//       --> [order: sequencer by stream position] --> [batch: serial collate] --> ready queue
//
// The consumer thread feeds tickets a batch group at a time while fewer than
// `prefetch` groups are outstanding, and takes batches from the ready queue.
#include "pasteflow/pipeline/loader.hpp"

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_group.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "pasteflow/stages/size_class.hpp"
#include "tsan_edges.hpp"

namespace pasteflow::pipeline {

namespace flow = oneapi::tbb::flow;

namespace {

using Clock = std::chrono::steady_clock;

struct PlannedBatch;

/// A stage's exception as values, taken inside the catch on the thread that
/// caught it. The exception object itself never travels with the message: its
/// reference count is kept by libstdc++, which ThreadSanitizer does not see,
/// so the last owner's destructor on a worker (a task's copy of the message)
/// was reported as racing with the consumer's earlier read of it.
struct CaughtError {
  std::string reason = "stage_error";  ///< Error::reason(); "stage_error" for other exceptions
  std::string message;                 ///< what()

  /// The exception being handled (call inside a catch block).
  static CaughtError current() {
    CaughtError c;
    try {
      throw;
    } catch (const Error& e) {
      c.reason = e.reason();
      c.message = e.what();
    } catch (const std::exception& e) {
      c.message = e.what();
    } catch (...) {
      c.message = "unknown exception";
    }
    return c;
  }
};

/// What flows through the graph: a ticket that becomes a sample, then a
/// prepared image. A stage that fails leaves `error` set and the message
/// passes through the remaining nodes untouched (a tombstone), so that the
/// sequencer never waits for a position that will not come.
struct MsgFields {
  uint64_t order = 0;        ///< position in the whole stream (sequencer key)
  bool group_last = false;   ///< last ticket of its batch group
  bool epoch_last = false;   ///< last ticket of its epoch
  uint64_t group = 0;        ///< its batch group's position in the epoch (Batch::index)
  stages::SampleTicket ticket;
  std::shared_ptr<stages::Sample> sample;
  std::shared_ptr<stages::PreparedImage> prepared;
  std::shared_ptr<PlannedBatch> planned;  ///< its group's batch tensor, made on first use (see plan_group)
  int64_t slot_index = -1;   ///< this sample's place in it
  std::optional<CaughtError> error;
  std::string error_stage;
};
/// oneTBB copies a message into tasks and node buffers inside libtbb, which
/// ThreadSanitizer does not see: under TSan each copy carries its edge
/// (tsan_edges.hpp); otherwise Msg is MsgFields.
using Msg = tsan::Handed<MsgFields>;

/// One item of the ready queue: a batch group's result.
struct Ready {
  std::optional<stages::Batch> batch;
  std::optional<stages::Sample> sample;
  std::optional<CaughtError> error;
  std::string error_stage;
  int64_t error_image_id = -1;
  std::string error_path;
  std::string error_record;
  uint64_t epoch = 0;
  bool epoch_last = false;
};

/// The padded batch tensors of the groups in flight, reused once nobody
/// holds them: a batch is 12 bytes a pixel (float32, 3 channels) and a new
/// one per group means faulting its pages in again (a quarter of the batch
/// stage's time at scale 1) and, with glibc's heap, fragmentation that let
/// the resident size grow to 2 GB on a 36000 x 18000 TIFF. At most
/// `capacity` storages are kept (loader.prefetch + 2: the groups issued plus
/// the consumer's current and previous batch); a storage is handed out
/// again only when the pool's is its only reference (every Batch, view and
/// PreparedImage on it gone), so a batch the consumer keeps is never
/// overwritten. Values are unaffected: prepare() writes every element of
/// its slot (pixels and padding).
class BatchPool {
 public:
  explicit BatchPool(size_t capacity) : capacity_(capacity) {}

  /// An uninitialised contiguous float32 tensor of `shape` (CPU).
  at::Tensor acquire(const std::vector<int64_t>& shape) {
    size_t need = sizeof(float);
    for (int64_t d : shape) need *= static_cast<size_t>(d);
    std::lock_guard<std::mutex> lock(mutex_);
    c10::Storage* best = nullptr;
    for (c10::Storage& st : kept_) {
      if (st.use_count() == 1 && st.nbytes() >= need && (best == nullptr || st.nbytes() < best->nbytes())) best = &st;
    }
    if (best != nullptr) {
      ++reused_;
      return at::empty({0}, at::kFloat).set_(*best, 0, shape, contiguous_strides(shape));
    }
    at::Tensor fresh = at::empty(shape, at::kFloat);
    ++allocated_;
    if (kept_.size() < capacity_) {
      kept_.push_back(fresh.storage());
    } else {
      // Replace a free storage too small for this shape, so that the pool
      // follows the batch sizes without growing past its capacity.
      for (c10::Storage& st : kept_) {
        if (st.use_count() == 1) {
          st = fresh.storage();
          break;
        }
      }
    }
    return fresh;
  }

  uint64_t reused() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return reused_;
  }
  uint64_t allocated() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return allocated_;
  }

 private:
  static std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
    std::vector<int64_t> strides(shape.size(), 1);
    for (size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
    return strides;
  }

  const size_t capacity_;
  mutable std::mutex mutex_;
  std::vector<c10::Storage> kept_;
  uint64_t reused_ = 0, allocated_ = 0;
};

/// A batch group's planned tensor: its shape is fixed when the group is
/// issued (sizes from the annotation file and the batch stage's draws),
/// the memory is taken from the pool only when the group's first sample
/// reaches prepare, so groups waiting for an in-flight slot hold none.
struct PlannedBatch {
  std::vector<int64_t> shape;  ///< [N, 3, H, W], padded
  BatchPool* pool = nullptr;
  std::once_flag once;
  at::Tensor images;
  const at::Tensor& get() {
    std::call_once(once, [this] { images = pool->acquire(shape); });
    return images;
  }
};

// Node roles.
using EntryNode = flow::queue_node<Msg>;          // tickets waiting for an in-flight slot
using LimiterNode = flow::limiter_node<Msg, int>;  // caps samples inside the graph
using StageNode = flow::function_node<Msg, Msg>;  // one pipeline stage
using OrderNode = flow::sequencer_node<Msg>;      // restores stream order
using BatchNode = flow::function_node<Msg, flow::continue_msg>;  // collates groups (serial)

struct StageCounter {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> ns{0};
};

size_t concurrency(int n) { return n <= 0 ? static_cast<size_t>(flow::unlimited) : static_cast<size_t>(n); }

}  // namespace

// ---------------------------------------------------------------- Impl

struct Loader::Impl {
  const io::CocoDataset& source;                          ///< the dataset given
  std::shared_ptr<const slice::SlicedDataset> views;     ///< null: no slicing
  const io::CocoDataset& dataset;                         ///< what is sampled: views->dataset or source
  PipelineConfig config;
  Output output;
  TicketSource tickets;
  ErrorPolicy policy;

  // Stages: pure function objects, shared read-only by the node bodies.
  stages::Sampler sampler;
  stages::InstanceBuilder instances;
  std::shared_ptr<raster::TiffPool> tiff_pool;  ///< one tile cache for every worker
  stages::Decoder decoder;
  stages::Paster paster;
  stages::CategoryMap categories;
  /// The batch tensors (declared before the graph: destroyed after it).
  BatchPool batch_pool;

  // Graph.
  std::unique_ptr<oneapi::tbb::global_control> parallelism;  ///< lifts TBB's default worker cap when asked for more threads than cores
  oneapi::tbb::task_arena arena;
  std::unique_ptr<flow::graph> graph;
  std::unique_ptr<EntryNode> entry;
  std::unique_ptr<LimiterNode> inflight;
  std::unique_ptr<StageNode> load, augment, prepare;
  std::unique_ptr<OrderNode> order;
  std::unique_ptr<BatchNode> batcher;

  // Counters.
  StageCounter load_t, augment_t, prepare_t, batch_t;
  std::atomic<int64_t> in_graph{0};
  std::atomic<uint64_t> max_in_graph{0};
  std::atomic<uint64_t> batches_copied{0};
  std::atomic<uint64_t> windows_read{0};
  std::atomic<bool> stopping{false};
  /// Under TSan, every node body releases on this at its end and ~Impl
  /// acquires it once graph::wait_for_all (inside libtbb) has returned.
  const char bodies_done = 0;

  // Batcher state (touched by the serial batch node only).
  std::vector<Msg> group;

  // Shared between the batch node and the consumer.
  mutable std::mutex mutex;
  std::deque<Ready> ready;
  // Consumer wake-up. While nothing is ready the consumer lends its thread
  // to the graph inside wake_group.wait(), which one deferred (never run)
  // task `wake` keeps open; the batch node drops that task right after
  // queueing an item, so the consumer returns with the first ready item
  // while the other issued groups go on (waiting for the whole graph
  // instead would drain the pipeline every `prefetch` groups).
  oneapi::tbb::task_group wake_group;
  oneapi::tbb::task_handle wake;       ///< guarded by `mutex`
  std::exception_ptr graph_failure;    ///< the batch node itself failed; guarded by `mutex`
  uint64_t max_ready = 0;
  SkipReport skipped;

  // Consumer-side state.
  uint64_t feed_epoch = 0;
  std::vector<stages::SampleTicket> feed_tickets;
  size_t feed_pos = 0;
  bool feed_loaded = false;
  bool feed_done = false;
  uint64_t next_order = 0;
  uint64_t groups_outstanding = 0;  ///< issued, not yet taken by the consumer
  uint64_t consumer_epoch = 0;
  bool epoch_finished = false;      ///< the last item of consumer_epoch was taken
  std::exception_ptr failed;        ///< strict mode: the first error, rethrown on every call
  double wait_s = 0;
  uint64_t batches_out = 0, samples_out = 0;

  Impl(const io::CocoDataset& src_ds, std::shared_ptr<const slice::SlicedDataset> sliced, PipelineConfig cfg,
       Output out, TicketSource src)
      : source(src_ds),
        views(checked_views(src_ds, std::move(sliced))),
        dataset(views ? views->dataset : src_ds),
        config(prepare_config(std::move(cfg), dataset)),
        output(out),
        tickets(std::move(src)),
        policy(parse_error_policy(config.loader.on_error)),
        sampler(config.sampler, image_infos(dataset, config.size)),
        instances(dataset, config.size, config.instances),
        tiff_pool(std::make_shared<raster::TiffPool>(config.raster)),
        decoder(config.decode, tiff_pool),
        paster(config.augment),
        categories(category_ids(dataset)),
        batch_pool(static_cast<size_t>(config.loader.prefetch) + 2),
        parallelism(make_parallelism_limit(config.loader.threads)),
        // One slot is the consumer's: while it waits for data it runs graph
        // tasks itself (take() waits inside the arena), so `threads` threads work in all.
        arena(config.loader.threads > 0 ? config.loader.threads : oneapi::tbb::task_arena::automatic,
              /*reserved_for_masters=*/1) {
    if (!tickets) tickets = [this](uint64_t e) { return sampler.epoch(e); };
    stages::validate(config.batch);
    arena.execute([this] { build_graph(); });
  }

  ~Impl() {
    stopping = true;
    arena.execute([this] {
      graph->cancel();
      graph->wait_for_all();
    });
    tsan::acquire(&bodies_done);
  }

  static std::unique_ptr<oneapi::tbb::global_control> make_parallelism_limit(int threads) {
    using oneapi::tbb::global_control;
    if (threads <= 0 || static_cast<size_t>(threads) <= global_control::active_value(global_control::max_allowed_parallelism)) {
      return nullptr;
    }
    return std::make_unique<global_control>(global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  }

  /// Fills the fields that are not config keys: seeds and size classes
  /// from the root, and the pasted-id base from the dataset (its largest
  /// annotation id, so pasted ids never collide with the dataset's).
  static PipelineConfig prepare_config(PipelineConfig cfg, const io::CocoDataset& ds) {
    cfg.loader.validate();
    raster::validate(cfg.raster);
    slice::validate(cfg.slice);
    cfg.derive();
    int64_t max_id = 0;
    for (const auto& a : ds.annotations) max_id = std::max(max_id, a.id);
    cfg.augment.composite.id_base = std::max(cfg.augment.composite.id_base, max_id);
    return cfg;
  }

  /// The views as given, after checking that they belong to `src`.
  static std::shared_ptr<const slice::SlicedDataset> checked_views(const io::CocoDataset& src,
                                                                   std::shared_ptr<const slice::SlicedDataset> v) {
    if (!v) return v;
    if (v->views.size() != v->dataset.images.size()) {
      throw Error("bad_views", std::to_string(v->views.size()) + " views for " +
                                   std::to_string(v->dataset.images.size()) + " view image records");
    }
    for (size_t i = 0; i < v->views.size(); ++i) {
      const slice::View& view = v->views[i];
      const io::ImageRecord& im = v->dataset.images[i];
      if (view.source_image_index >= src.images.size() ||
          src.images[view.source_image_index].id != view.source_image_id) {
        throw Error("bad_views", "view " + std::to_string(i) + " names source image id " +
                                     std::to_string(view.source_image_id) + ", which the dataset lacks at index " +
                                     std::to_string(view.source_image_index));
      }
      if (view.sliced && (view.window.width != im.width || view.window.height != im.height)) {
        throw Error("bad_views", "view " + std::to_string(i) + " has a " + std::to_string(view.window.width) + "x" +
                                     std::to_string(view.window.height) + " window but a " +
                                     std::to_string(im.width) + "x" + std::to_string(im.height) + " image record");
      }
    }
    return v;
  }

  /// The record text of a sample in errors: the view and, when sliced, its
  /// source image and window.
  std::string record_of(uint32_t image_index) const {
    const io::ImageRecord& im = dataset.images[image_index];
    std::string r = "image id " + std::to_string(im.id);
    if (views && views->views[image_index].sliced) {
      const slice::View& v = views->views[image_index];
      r += " (view of source image id " + std::to_string(v.source_image_id) + ", window [" +
           std::to_string(v.window.x) + ", " + std::to_string(v.window.y) + ", " + std::to_string(v.window.width) +
           ", " + std::to_string(v.window.height) + "])";
    }
    return r;
  }

  /// Load node, a sliced view: the window's pixels, read by tiles; the size
  /// must be the view's, as every instance mask's.
  void decode_view(stages::Sample& s, const slice::View& view) {
    const io::ImageRecord& im = dataset.images[s.image_index];
    auto mismatch = [&](const std::string& what, int64_t w, int64_t h) {
      Location where;
      where.file = s.path;
      where.record = record_of(s.image_index);
      return InputError("size_mismatch",
                        what + " is " + std::to_string(w) + "x" + std::to_string(h) + " but the view is " +
                            std::to_string(im.width) + "x" + std::to_string(im.height),
                        where);
    };
    for (const stages::Instance& inst : s.instances) {
      if (inst.has_mask && (inst.mask.w != static_cast<uint32_t>(im.width) ||
                            inst.mask.h != static_cast<uint32_t>(im.height))) {
        throw mismatch("mask of annotation " + std::to_string(inst.id), inst.mask.w, inst.mask.h);
      }
    }
    s.image = decoder.decode_window(s.path, view.window);
    ++windows_read;
    if (s.image.cols != im.width || s.image.rows != im.height) throw mismatch("the window read", s.image.cols, s.image.rows);
  }

  static std::vector<int64_t> category_ids(const io::CocoDataset& ds) {
    std::vector<int64_t> ids;
    ids.reserve(ds.categories.size());
    for (const auto& c : ds.categories) ids.push_back(c.id);
    return ids;
  }

  size_t group_size() const { return output == Output::kBatches ? static_cast<size_t>(config.loader.batch_size) : 1; }

  // ------------------------------------------------------------ the graph

  /// Wraps a stage body: skips tombstones, times the call, turns exceptions
  /// into tombstones.
  template <typename Body>
  auto stage(const char* name, StageCounter& counter, Body body) {
    return [this, name, &counter, body](Msg msg) -> Msg {
      if (msg.error || stopping.load(std::memory_order_relaxed)) {
        body_done();
        return msg;
      }
      const auto t0 = Clock::now();
      try {
        body(msg);
      } catch (...) {
        msg.error = CaughtError::current();
        msg.error_stage = name;
      }
      counter.ns += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
      ++counter.calls;
      body_done();
      return msg;
    };
  }

  // Under TSan, the edges oneTBB's scheduler keeps inside libtbb (tsan_edges.hpp;
  // the messages carry their own). The ready queue needs none: the batch node
  // and the consumer share it under `mutex`, which TSan sees.
  /// The end of every node body: ~Impl acquires bodies_done after wait_for_all.
  void body_done() const noexcept { tsan::release(&bodies_done); }
  /// The serial batch node (flow::serial): each call happens after the
  /// previous one, whichever threads run them, and after its message was made.
  void batch_begin(const Msg& m) const noexcept {
    tsan::acquire(&group);
    tsan::received(m);
  }
  void batch_end() const noexcept {
    tsan::release(&group);
    body_done();
  }

  void build_graph() {
    graph = std::make_unique<flow::graph>();
    flow::graph& g = *graph;
    const LoaderConfig& lc = config.loader;

    entry = std::make_unique<EntryNode>(g);
    inflight = std::make_unique<LimiterNode>(g, static_cast<size_t>(lc.inflight));

    load = std::make_unique<StageNode>(g, concurrency(lc.decode_concurrency), stage("load", load_t, [this](Msg& m) {
      note_entered();
      auto s = std::make_shared<stages::Sample>();
      s->seq = m.ticket.position;  // unique across ranks, so ranks draw different random streams
      s->epoch = m.ticket.epoch;
      s->image_index = m.ticket.image_index;
      s->copy = m.ticket.copy;
      s->augment = m.ticket.augment;
      m.sample = s;  // set before the stages run, so errors can name the image
      instances(*s);
      if (views && views->views[s->image_index].sliced) {
        decode_view(*s, views->views[s->image_index]);
      } else {
        const io::ImageRecord& im = dataset.images[s->image_index];
        decoder(*s, im.width, im.height);
      }
    }));

    augment = std::make_unique<StageNode>(g, concurrency(lc.augment_concurrency),
                                          stage("augment", augment_t, [this](Msg& m) { paster(*m.sample); }));

    prepare = std::make_unique<StageNode>(g, concurrency(lc.prepare_concurrency), stage("prepare", prepare_t, [this](Msg& m) {
      if (output != Output::kBatches) return;
      stages::BatchSlot slot;
      if (m.planned) slot = stages::BatchSlot{m.planned->get(), m.slot_index};
      m.prepared = std::make_shared<stages::PreparedImage>(
          stages::prepare(*m.sample, config.batch, categories, stages::batch_rng(config.seed, *m.sample), slot));
      m.sample.reset();  // the decoded pixels are no longer needed
      m.planned.reset();
    }));

    order = std::make_unique<OrderNode>(g, [](const Msg& m) -> size_t { return static_cast<size_t>(m.order); });

    batcher = std::make_unique<BatchNode>(g, flow::serial, [this](const Msg& m) {
      batch_begin(m);
      const auto t0 = Clock::now();
      try {
        note_left_graph(m);
        group.push_back(m);
        if (m.group_last) emit_group();
      } catch (...) {  // e.g. bad_alloc: hand it to the consumer rather than hang it
        oneapi::tbb::task_handle release;
        std::lock_guard<std::mutex> lock(mutex);
        if (!graph_failure) graph_failure = std::current_exception();
        release = std::move(wake);
      }
      batch_t.ns += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
      ++batch_t.calls;
      batch_end();
      return flow::continue_msg();
    });

    flow::make_edge(*entry, *inflight);
    flow::make_edge(*inflight, *load);
    flow::make_edge(*load, *augment);
    flow::make_edge(*augment, *prepare);
    flow::make_edge(*prepare, *order);
    flow::make_edge(*order, *batcher);
  }

  void note_entered() {
    const int64_t n = ++in_graph;
    uint64_t prev = max_in_graph.load();
    while (static_cast<uint64_t>(n) > prev && !max_in_graph.compare_exchange_weak(prev, static_cast<uint64_t>(n))) {
    }
  }

  void note_left_graph(const Msg& m) {
    (void)m;
    --in_graph;
    inflight->decrementer().try_put(1);
  }

  /// Serial: turns the collected group into one ready item.
  void emit_group() {
    Ready item;
    item.epoch = group.front().ticket.epoch;
    item.epoch_last = group.back().epoch_last;
    SkipReport local;
    std::vector<stages::PreparedImage> images;
    for (Msg& m : group) {
      if (m.error) {
        if (policy == ErrorPolicy::kSkip) {
          count_skip(m, local);
          continue;
        }
        if (!item.error) set_error(item, *m.error, m.error_stage, m);
        continue;
      }
      if (output == Output::kBatches) {
        images.push_back(std::move(*m.prepared));
      } else {
        item.sample = std::move(*m.sample);
      }
    }
    group.clear();
    if (!item.error && !images.empty()) {
      try {
        const at::Tensor planned = images.front().slot.images;
        item.batch = stages::collate(std::move(images), config.batch, group.front().group);
        if (item.batch->images.defined() && (!planned.defined() || !item.batch->images.is_same(planned))) {
          ++batches_copied;
        }
      } catch (...) {
        CaughtError caught = CaughtError::current();
        if (policy == ErrorPolicy::kSkip) {
          local.add("collate_error", caught.message);
        } else {
          item.error = std::move(caught);
          item.error_stage = "batch";
        }
      }
    }
    oneapi::tbb::task_handle release;  // destroyed after the lock: wakes a waiting consumer
    std::lock_guard<std::mutex> lock(mutex);
    skipped.merge(local);
    ready.push_back(std::move(item));
    max_ready = std::max<uint64_t>(max_ready, ready.size());
    release = std::move(wake);
  }

  void count_skip(const Msg& m, SkipReport& report) const { report.add(m.error->reason, m.error->message); }

  void set_error(Ready& item, const CaughtError& error, const std::string& stage_name, const Msg& m) const {
    item.error = error;
    item.error_stage = stage_name;
    const io::ImageRecord& im = dataset.images[m.ticket.image_index];
    item.error_image_id = im.id;
    item.error_path = dataset.image_path(im);
    item.error_record = record_of(m.ticket.image_index);
  }

  // ------------------------------------------------------------ feeding

  bool load_epoch_tickets() {
    while (true) {
      if (config.loader.max_epochs != 0 && feed_epoch >= config.loader.max_epochs) return false;
      feed_tickets = tickets(feed_epoch);
      feed_pos = 0;
      if (config.loader.drop_last && output == Output::kBatches) {
        feed_tickets.resize(feed_tickets.size() - feed_tickets.size() % group_size());
      }
      if (!feed_tickets.empty()) return true;
      ++feed_epoch;  // an empty epoch: nothing to deliver
      if (config.loader.max_epochs == 0) return false;  // avoid spinning on a sampler that yields nothing
    }
  }

  /// Consumer thread: issues whole groups while fewer than `prefetch` are outstanding.
  void top_up() {
    std::vector<Msg> batch_msgs;
    while (!feed_done) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (groups_outstanding >= static_cast<uint64_t>(config.loader.prefetch)) break;
      }
      if (!feed_loaded || feed_pos >= feed_tickets.size()) {
        if (feed_loaded) ++feed_epoch;
        feed_loaded = load_epoch_tickets();
        if (!feed_loaded) {
          feed_done = true;
          break;
        }
      }
      const size_t n = std::min(group_size(), feed_tickets.size() - feed_pos);
      for (size_t i = 0; i < n; ++i) {
        Msg m;
        m.order = next_order++;
        m.ticket = feed_tickets[feed_pos + i];
        m.ticket.epoch = feed_epoch;
        m.group = feed_pos / group_size();
        m.group_last = i + 1 == n;
        m.epoch_last = m.group_last && feed_pos + n == feed_tickets.size();
        batch_msgs.push_back(std::move(m));
      }
      if (output == Output::kBatches && config.batch.output == "model") plan_group(batch_msgs.end() - static_cast<std::ptrdiff_t>(n), batch_msgs.end());
      feed_pos += n;
      {
        std::lock_guard<std::mutex> lock(mutex);
        ++groups_outstanding;
      }
    }
    if (batch_msgs.empty()) return;
    arena.execute([&] {
      for (Msg& m : batch_msgs) entry->try_put(m);
    });
  }

  /// Allocates a batch group's padded image tensor before its samples enter
  /// the graph, sized from the annotation file's image sizes and the batch
  /// stage's own random draws, and gives each sample its slot: prepare
  /// resizes into it and collate hands the tensor over without copying.
  /// Groups with an image of unknown size (0 in the file) go without; a
  /// sample whose pixels turn out another size gets a tensor of its own
  /// (stages::prepare) and its batch is copied as before.
  template <typename It>
  void plan_group(It first, It last) {
    std::vector<stages::rcnn::Size2> sizes;
    for (It m = first; m != last; ++m) {
      const io::ImageRecord& im = dataset.images[m->ticket.image_index];
      if (im.width <= 0 || im.height <= 0) return;
      sizes.push_back(stages::planned_size(im.height, im.width, config.batch,
                                           stages::batch_rng(config.seed, m->ticket.epoch, m->ticket.position)));
    }
    if (sizes.empty()) return;
    int64_t max_h = 0, max_w = 0;
    for (const stages::rcnn::Size2& sz : sizes) {
      if (sz[0] <= 0 || sz[1] <= 0) (void)stages::allocate_batch(sizes, config.batch);  // throws its "bad_image"
      max_h = std::max(max_h, sz[0]);
      max_w = std::max(max_w, sz[1]);
    }
    const stages::rcnn::Size2 padded = stages::rcnn::padded_size(max_h, max_w, config.batch.size_divisible);
    auto planned = std::make_shared<PlannedBatch>();
    planned->shape = {static_cast<int64_t>(sizes.size()), 3, padded[0], padded[1]};
    planned->pool = &batch_pool;
    int64_t index = 0;
    for (It m = first; m != last; ++m) {
      m->planned = planned;
      m->slot_index = index++;
    }
  }

  /// Takes the next ready item; returns false at the end of the epoch.
  bool take(Ready& out) {
    if (failed) std::rethrow_exception(failed);
    if (epoch_finished) {  // the previous call delivered the epoch's last item: report its end
      epoch_finished = false;
      ++consumer_epoch;
      return false;
    }
    while (true) {
      top_up();
      std::unique_lock<std::mutex> lock(mutex);
      if (ready.empty()) {
        if (feed_done && groups_outstanding == 0) return false;
        // Nothing ready: lend this thread to the graph until the batch node
        // queues the next item (it drops `wake`, see above).
        wake = wake_group.defer([] {});
        lock.unlock();
        const auto t0 = Clock::now();
        arena.execute([this] { wake_group.wait(); });
        wait_s += std::chrono::duration<double>(Clock::now() - t0).count();
        lock.lock();
        if (graph_failure) std::rethrow_exception(graph_failure);
        if (ready.empty()) throw Error("pipeline_stalled", "the consumer was woken with no batch ready");
      }
      Ready item = std::move(ready.front());
      ready.pop_front();
      --groups_outstanding;
      lock.unlock();
      if (item.error) {
        failed = wrap_error(item);
        std::rethrow_exception(failed);
      }
      const bool last = item.epoch_last;
      const bool has_data = item.batch.has_value() || item.sample.has_value();
      if (has_data) {
        out = std::move(item);
        if (last) epoch_finished = true;
        return true;
      }
      if (last) {  // every sample of the epoch's last group was skipped
        ++consumer_epoch;
        return false;
      }
    }
  }

  std::exception_ptr wrap_error(const Ready& item) const {
    Location where;
    where.file = item.error_path;
    where.record = item.error_record;
    return std::make_exception_ptr(PipelineError(item.error->reason,
                                                 "stage '" + item.error_stage + "' failed: " + item.error->message,
                                                 where, item.error_image_id, item.error_stage));
  }
};

// ---------------------------------------------------------------- Loader

std::shared_ptr<const slice::SlicedDataset> make_views(const io::CocoDataset& dataset, const PipelineConfig& config) {
  if (config.slice.above <= 0) return nullptr;
  slice::validate(config.slice);
  auto views = std::make_shared<slice::SlicedDataset>(slice::slice_dataset(
      dataset, config.slice, config.seed, /*slice_all=*/false, parse_error_policy(config.loader.on_error)));
  views->dataset.image_root = dataset.image_root;
  return views;
}

Loader::Loader(const io::CocoDataset& dataset, PipelineConfig config, Output output, TicketSource tickets)
    : Loader(dataset, make_views(dataset, config), config, output, std::move(tickets)) {}  // config copied: make_views reads it

Loader::Loader(const io::CocoDataset& dataset, std::shared_ptr<const slice::SlicedDataset> views, PipelineConfig config,
               Output output, TicketSource tickets)
    : impl_(std::make_unique<Impl>(dataset, std::move(views), std::move(config), output, std::move(tickets))) {}

Loader::~Loader() = default;

std::optional<stages::Batch> Loader::next_batch() {
  if (impl_->output != Output::kBatches) throw Error("wrong_output", "next_batch() on a loader built for samples");
  Ready item;
  if (!impl_->take(item)) return std::nullopt;
  ++impl_->batches_out;
  impl_->samples_out += item.batch->targets.size();
  item.batch->epoch = item.epoch;
  return std::move(item.batch);
}

std::optional<stages::Sample> Loader::next_sample() {
  if (impl_->output != Output::kSamples) throw Error("wrong_output", "next_sample() on a loader built for batches");
  Ready item;
  if (!impl_->take(item)) return std::nullopt;
  ++impl_->samples_out;
  return std::move(item.sample);
}

void Loader::seek(uint64_t epoch, uint64_t batch) {
  Impl& im = *impl_;
  if (im.next_order != 0) throw Error("seek_after_start", "Loader::seek() must come before the first batch");
  if (batch > batches_per_epoch(epoch)) {
    throw Error("seek_out_of_range", "batch " + std::to_string(batch) + " is past the end of epoch " + std::to_string(epoch));
  }
  im.feed_epoch = epoch;
  im.consumer_epoch = epoch;
  im.feed_loaded = im.load_epoch_tickets();
  im.feed_pos = std::min(im.feed_tickets.size(), static_cast<size_t>(batch) * im.group_size());
  if (im.feed_loaded && im.feed_pos == im.feed_tickets.size()) {
    // Positioned exactly at the end of the epoch: the next call reports its end.
    im.epoch_finished = true;
    im.consumer_epoch = epoch;
  }
}

Loader::Iterator Loader::begin() { return Iterator(this); }
Loader::Iterator Loader::end() { return Iterator(); }

uint64_t Loader::epoch() const noexcept { return impl_->consumer_epoch + (impl_->epoch_finished ? 1 : 0); }

size_t Loader::epoch_size(uint64_t e) const { return impl_->tickets(e).size(); }

size_t Loader::batches_per_epoch(uint64_t e) const {
  const size_t n = epoch_size(e);
  const size_t b = impl_->group_size();
  return impl_->config.loader.drop_last ? n / b : (n + b - 1) / b;
}

StageTimes Loader::times() const {
  StageTimes t;
  auto add = [&t](const char* name, const StageCounter& c) {
    t.stages.push_back({name, c.calls.load(), static_cast<double>(c.ns.load()) * 1e-9});
  };
  add("load", impl_->load_t);
  add("augment", impl_->augment_t);
  if (impl_->output == Output::kBatches) add("prepare", impl_->prepare_t);
  add("batch", impl_->batch_t);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  t.consumer_wait_s = impl_->wait_s;
  t.batches = impl_->batches_out;
  t.samples = impl_->samples_out;
  t.max_ready = impl_->max_ready;
  t.max_inflight = impl_->max_in_graph.load();
  t.batches_copied = impl_->batches_copied.load();
  t.windows_read = impl_->windows_read.load();
  t.batch_tensors_allocated = impl_->batch_pool.allocated();
  t.batch_tensors_reused = impl_->batch_pool.reused();
  t.tile_cache = tile_cache();
  return t;
}

SkipReport Loader::skipped() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->skipped;
}

const stages::CategoryMap& Loader::categories() const noexcept { return impl_->categories; }
const stages::Sampler& Loader::sampler() const noexcept { return impl_->sampler; }
const PipelineConfig& Loader::config() const noexcept { return impl_->config; }
const io::CocoDataset& Loader::dataset() const noexcept { return impl_->dataset; }
const io::CocoDataset& Loader::source() const noexcept { return impl_->source; }
const std::shared_ptr<const slice::SlicedDataset>& Loader::views() const noexcept { return impl_->views; }

raster::TileCache::Stats Loader::tile_cache() const {
  const auto& cache = impl_->tiff_pool->cache();
  return cache ? cache->stats() : raster::TileCache::Stats{};
}

// ---------------------------------------------------------------- helpers

void LoaderConfig::validate() const {
  auto bad = [](const std::string& key, const std::string& msg) {
    Location where;
    where.key = "loader." + key;
    throw ConfigError("bad_value", msg, where);
  };
  if (threads < 0) bad("threads", "must be >= 0");
  if (batch_size < 1) bad("batch_size", "must be >= 1");
  if (prefetch < 1) bad("prefetch", "must be >= 1");
  if (inflight < 1) bad("inflight", "must be >= 1");
  if (on_error != "strict" && on_error != "skip") bad("on_error", "must be 'strict' or 'skip'");
}

std::vector<stages::ImageInfo> image_infos(const io::CocoDataset& dataset, const stages::SizeClassConfig& size) {
  const stages::SizeClassifier classify(size);
  std::vector<stages::ImageInfo> infos(dataset.images.size());
  for (size_t i = 0; i < dataset.images.size(); ++i) {
    stages::ImageInfo& info = infos[i];
    for (const uint32_t a : dataset.annotations_of(i)) {
      const io::AnnotationRecord& ann = dataset.annotations[a];
      if (ann.iscrowd) continue;
      info.category_ids.push_back(ann.category_id);
      switch (classify(dataset, ann)) {
        case stages::SizeClass::kSmall:
          info.has_small = true;
          ++info.num_small;
          break;
        case stages::SizeClass::kMedium:
          info.has_medium = true;
          ++info.num_medium;
          break;
        case stages::SizeClass::kLarge:
          info.has_large = true;
          ++info.num_large;
          break;
      }
    }
  }
  return infos;
}

}  // namespace pasteflow::pipeline
