#include "pasteflow/stages/sampler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "pasteflow/core/error.hpp"

namespace pasteflow::stages {
namespace {

ImageInfo small_image(std::vector<int64_t> cats = {1}) {
  ImageInfo info;
  info.has_small = true;
  info.category_ids = std::move(cats);
  return info;
}

ImageInfo large_image(std::vector<int64_t> cats = {1}) {
  ImageInfo info;
  info.has_large = true;
  info.category_ids = std::move(cats);
  return info;
}

// Ten images: even indices contain small objects, odd ones only large ones.
std::vector<ImageInfo> mixed_infos(std::size_t n = 10) {
  std::vector<ImageInfo> infos;
  for (std::size_t i = 0; i < n; ++i) infos.push_back(i % 2 == 0 ? small_image() : large_image());
  return infos;
}

std::map<uint32_t, int> count_images(const std::vector<uint32_t>& list) {
  std::map<uint32_t, int> counts;
  for (uint32_t i : list) ++counts[i];
  return counts;
}

// --------------------------------------------------------------- repeat factors

TEST(SamplerRepeatFactor, CategoryFormulaOnHandExamples) {
  // r(c) = max(1, sqrt(t / f(c)))
  EXPECT_DOUBLE_EQ(Sampler::category_repeat_factor(0.001, 0.00025), 2.0);
  EXPECT_DOUBLE_EQ(Sampler::category_repeat_factor(0.5, 0.125), 2.0);
  EXPECT_DOUBLE_EQ(Sampler::category_repeat_factor(0.09, 0.01), 3.0);
  EXPECT_DOUBLE_EQ(Sampler::category_repeat_factor(0.001, 0.001), 1.0);   // f == t
  EXPECT_DOUBLE_EQ(Sampler::category_repeat_factor(0.001, 0.5), 1.0);     // frequent: clamped to 1
  EXPECT_DOUBLE_EQ(Sampler::category_repeat_factor(0.0, 0.0001), 1.0);    // off
}

TEST(SamplerRepeatFactor, ImageFactorIsMaxOverItsCategories) {
  // Four images. Category 7 appears in 1 image (f = 1/4), 8 in all 4 (f = 1),
  // 9 in 2 (f = 1/2). With t = 1: r(7) = 2, r(8) = 1, r(9) = sqrt(2).
  std::vector<ImageInfo> infos(4);
  infos[0].category_ids = {7, 8, 7, 7};  // duplicates count once for f
  infos[1].category_ids = {8, 9};
  infos[2].category_ids = {8, 9};
  infos[3].category_ids = {8};
  const std::vector<double> r = Sampler::category_repeat_factors(infos, 1.0);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_DOUBLE_EQ(r[0], 2.0);
  EXPECT_DOUBLE_EQ(r[1], std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(r[2], std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(r[3], 1.0);

  // With t = 0.25 only category 7 is rare enough: sqrt(0.25 / 0.25) = 1.
  for (double x : Sampler::category_repeat_factors(infos, 0.25)) EXPECT_DOUBLE_EQ(x, 1.0);
  // An image without categories keeps factor 1.
  infos.push_back(ImageInfo{});
  EXPECT_DOUBLE_EQ(Sampler::category_repeat_factors(infos, 1.0).back(), 1.0);
}

TEST(SamplerRepeatFactor, SizeAndCategoryFactorsCombineByMaxOrProduct) {
  // Image 0: small objects, rare category 5 (f = 1/4, t = 1 -> r_cat = 2).
  // Image 1: small objects, common category. Images 2, 3: large, common.
  std::vector<ImageInfo> infos = {small_image({5, 1}), small_image({1}), large_image({1}),
                                  large_image({1})};
  SamplerConfig cfg;
  cfg.oversample = 3.0;
  cfg.repeat_threshold = 1.0;
  cfg.combine = "max";
  Sampler by_max(cfg, infos);
  EXPECT_EQ(by_max.repeat_factors(), (std::vector<double>{3.0, 3.0, 1.0, 1.0}));
  cfg.combine = "product";
  Sampler by_product(cfg, infos);
  EXPECT_EQ(by_product.repeat_factors(), (std::vector<double>{6.0, 3.0, 1.0, 1.0}));
  cfg.oversample = 1.5;
  cfg.combine = "max";
  Sampler rare_wins(cfg, infos);
  EXPECT_EQ(rare_wins.repeat_factors(), (std::vector<double>{2.0, 1.5, 1.0, 1.0}));
}

TEST(SamplerRepeatFactor, OversampleClassesSelectEligibleImages) {
  ImageInfo medium;
  medium.has_medium = true;
  std::vector<ImageInfo> infos = {small_image(), medium, large_image()};
  SamplerConfig cfg;
  cfg.oversample = 2.0;
  cfg.oversample_classes = {"medium", "large"};
  Sampler sampler(cfg, infos);
  EXPECT_EQ(sampler.repeat_factors(), (std::vector<double>{1.0, 2.0, 2.0}));
}

// --------------------------------------------------------------- epochs

TEST(SamplerEpoch, StochasticRoundingAveragesToTheRepeatFactor) {
  // One image with r = 2.3 and one with r = 1: n_0 in {2, 3}, mean 2.3.
  SamplerConfig cfg;
  cfg.oversample = 2.3;
  cfg.seed = 11;
  Sampler sampler(cfg, {small_image(), large_image()});
  const int epochs = 4000;
  double sum = 0;
  int threes = 0;
  for (int e = 0; e < epochs; ++e) {
    int n0 = 0, n1 = 0;
    for (const SampleTicket& t : sampler.epoch(e)) (t.image_index == 0 ? n0 : n1)++;
    ASSERT_TRUE(n0 == 2 || n0 == 3) << n0;
    ASSERT_EQ(n1, 1);
    ASSERT_EQ(sampler.expanded_size(e), static_cast<std::size_t>(n0 + n1));
    sum += n0;
    threes += n0 == 3;
  }
  // Binomial(4000, 0.3): sd of the mean of n_0 is sqrt(0.21 / 4000) ~ 0.0072.
  EXPECT_NEAR(sum / epochs, 2.3, 0.03);
  EXPECT_GT(threes, 0);
  EXPECT_LT(threes, epochs);
}

TEST(SamplerEpoch, DeterministicFromSeedAndEpochAndDifferentAcrossEpochs) {
  SamplerConfig cfg;
  cfg.seed = 1234;
  cfg.oversample = 2.5;
  const auto infos = mixed_infos(50);
  Sampler a(cfg, infos), b(cfg, infos);
  auto key = [](const std::vector<SampleTicket>& ts) {
    std::vector<std::tuple<uint32_t, uint32_t, bool>> out;
    for (const auto& t : ts) out.emplace_back(t.image_index, t.copy, t.augment);
    return out;
  };
  for (uint64_t e : {0u, 1u, 7u}) EXPECT_EQ(key(a.epoch(e)), key(b.epoch(e)));
  EXPECT_NE(key(a.epoch(0)), key(a.epoch(1)));
  cfg.seed = 1235;
  Sampler c(cfg, infos);
  EXPECT_NE(key(a.epoch(0)), key(c.epoch(0)));
}

TEST(SamplerEpoch, EpochIsTheShuffledExpandedListWithDistinctCopies) {
  SamplerConfig cfg;
  cfg.seed = 5;
  cfg.oversample = 3.0;
  Sampler sampler(cfg, mixed_infos(20));
  const auto tickets = sampler.epoch(3);
  ASSERT_EQ(tickets.size(), 10u * 3 + 10u);
  std::set<std::pair<uint32_t, uint32_t>> pairs;
  bool sorted = true;
  for (std::size_t s = 0; s < tickets.size(); ++s) {
    EXPECT_EQ(tickets[s].seq, s);
    EXPECT_EQ(tickets[s].position, s);
    EXPECT_EQ(tickets[s].epoch, 3u);
    EXPECT_FALSE(tickets[s].padding);
    pairs.emplace(tickets[s].image_index, tickets[s].copy);
    if (s > 0 && tickets[s].image_index < tickets[s - 1].image_index) sorted = false;
  }
  EXPECT_EQ(pairs.size(), tickets.size());  // every (image, copy) exactly once
  for (uint32_t i = 0; i < 20; ++i) {
    const uint32_t n = i % 2 == 0 ? 3 : 1;
    for (uint32_t c = 0; c < n; ++c) EXPECT_TRUE(pairs.count({i, c})) << i << " " << c;
  }
  EXPECT_FALSE(sorted);  // shuffled

  cfg.shuffle = false;
  Sampler ordered(cfg, mixed_infos(20));
  const auto plain = ordered.epoch(3);
  for (std::size_t s = 1; s < plain.size(); ++s) {
    EXPECT_LE(std::make_pair(plain[s - 1].image_index, plain[s - 1].copy),
              std::make_pair(plain[s].image_index, plain[s].copy));
  }
}

TEST(SamplerEpoch, EpochZeroIsTheMaterialisedMultiset) {
  SamplerConfig cfg;
  cfg.seed = 77;
  cfg.oversample = 1.7;  // fractional: the rounding must agree too
  Sampler sampler(cfg, mixed_infos(40));
  std::vector<uint32_t> online;
  for (const auto& t : sampler.epoch(0)) online.push_back(t.image_index);
  std::sort(online.begin(), online.end());
  EXPECT_EQ(online, sampler.materialise(77));
}

TEST(SamplerEpoch, EmptyDatasetGivesEmptyEpoch) {
  SamplerConfig cfg;
  cfg.world_size = 3;
  cfg.rank = 2;
  Sampler sampler(cfg, {});
  EXPECT_TRUE(sampler.epoch(0).empty());
  EXPECT_EQ(sampler.epoch_size(0), 0u);
  EXPECT_TRUE(sampler.materialise(0).empty());
}

// --------------------------------------------------------------- sharding

struct ShardCase {
  uint32_t world_size;
  std::size_t images;
  bool drop_last;
  double oversample = 2.5;
  double repeat_threshold = 0.0;  ///< category-frequency repeat factor (mixed categories below)
  const char* oversample_by = "presence";
  const char* aug_mode = "none";
};

/// mixed_infos with categories of unequal frequency: every image has
/// category 1, every third one also category 2, every seventh category 3.
std::vector<ImageInfo> mixed_category_infos(std::size_t n) {
  std::vector<ImageInfo> infos = mixed_infos(n);
  for (std::size_t i = 0; i < n; ++i) {
    infos[i].category_ids = {1};
    if (i % 3 == 0) infos[i].category_ids.push_back(2);
    if (i % 7 == 0) infos[i].category_ids.push_back(3);
    infos[i].num_small = infos[i].has_small ? static_cast<uint32_t>(1 + i % 4) : 0;
  }
  return infos;
}

class SamplerSharding : public ::testing::TestWithParam<ShardCase> {};

TEST_P(SamplerSharding, EqualShardsWhoseUnionIsTheEpoch) {
  const ShardCase p = GetParam();
  SamplerConfig cfg;
  cfg.seed = 99;
  cfg.oversample = p.oversample;
  cfg.repeat_threshold = p.repeat_threshold;
  cfg.oversample_by = p.oversample_by;
  cfg.aug_mode = p.aug_mode;
  cfg.world_size = p.world_size;
  cfg.drop_last = p.drop_last;
  const auto infos = mixed_category_infos(p.images);
  cfg.rank = 0;
  cfg.world_size = 1;
  Sampler whole(cfg, infos);
  cfg.world_size = p.world_size;

  for (uint64_t e : {0u, 1u, 2u}) {
    const auto full = whole.epoch(e);  // the unsharded list (world_size 1)
    const std::size_t m = full.size();
    std::vector<std::vector<SampleTicket>> shards;
    for (uint32_t r = 0; r < p.world_size; ++r) {
      cfg.rank = r;
      shards.push_back(Sampler(cfg, infos).epoch(e));
    }
    const std::size_t expect_shard =
        p.drop_last ? m / p.world_size : (m + p.world_size - 1) / p.world_size;
    std::set<uint64_t> positions;
    std::multiset<std::pair<uint32_t, uint32_t>> real, padded;
    for (uint32_t r = 0; r < p.world_size; ++r) {
      ASSERT_EQ(shards[r].size(), expect_shard) << "rank " << r;
      for (std::size_t s = 0; s < shards[r].size(); ++s) {
        const SampleTicket& t = shards[r][s];
        EXPECT_EQ(t.seq, s);
        EXPECT_EQ(t.position, s * p.world_size + r);
        EXPECT_TRUE(positions.insert(t.position).second);  // disjoint by position
        // Same entry as in the unsharded list at that position (wrapped).
        const SampleTicket& ref = full[t.position % m];
        EXPECT_EQ(t.image_index, ref.image_index);
        EXPECT_EQ(t.copy, ref.copy);
        EXPECT_EQ(t.augment, ref.augment);
        EXPECT_EQ(t.padding, t.position >= m);
        (t.padding ? padded : real).emplace(t.image_index, t.copy);
      }
    }
    std::multiset<std::pair<uint32_t, uint32_t>> all;
    for (const auto& t : full) all.emplace(t.image_index, t.copy);
    if (p.drop_last) {
      EXPECT_TRUE(padded.empty());
      EXPECT_EQ(real.size(), (m / p.world_size) * p.world_size);
      for (const auto& x : real) EXPECT_EQ(real.count(x), 1u);  // no entry twice
      EXPECT_TRUE(std::includes(all.begin(), all.end(), real.begin(), real.end()));
    } else {
      EXPECT_EQ(real, all);  // union of shards == epoch multiset, modulo padding
      EXPECT_EQ(padded.size(), expect_shard * p.world_size - m);
      // padding repeats the list's first entries
      std::multiset<std::pair<uint32_t, uint32_t>> head;
      for (std::size_t j = 0; j < padded.size(); ++j) head.emplace(full[j % m].image_index, full[j % m].copy);
      EXPECT_EQ(padded, head);
    }
    if (m % p.world_size == 0) {
      EXPECT_TRUE(padded.empty());
      std::set<std::pair<uint32_t, uint32_t>> unique(real.begin(), real.end());
      EXPECT_EQ(unique.size(), real.size());  // shards disjoint
    }
  }
}

INSTANTIATE_TEST_SUITE_P(WorldSizes, SamplerSharding,
                         ::testing::Values(ShardCase{1, 10, false}, ShardCase{2, 10, false},
                                           ShardCase{3, 10, false}, ShardCase{4, 13, false},
                                           ShardCase{7, 5, false}, ShardCase{16, 3, false},
                                           ShardCase{2, 10, true}, ShardCase{3, 11, true},
                                           ShardCase{4, 13, true}, ShardCase{7, 30, true},
                                           // repeat factors: category frequency, by count, the paper's 2x copies
                                           ShardCase{2, 21, false, 1.0, 0.5}, ShardCase{3, 22, false, 3.0, 0.5},
                                           ShardCase{4, 23, true, 1.0, 0.5, "presence", "original_aug"},
                                           ShardCase{2, 25, false, 3.0, 0.0, "count"},
                                           ShardCase{5, 26, false, 2.0, 0.3, "count", "original_aug"}),
                         [](const ::testing::TestParamInfo<ShardCase>& info) {
                           const ShardCase& c = info.param;
                           std::string name = "w" + std::to_string(c.world_size) + "_n" + std::to_string(c.images) +
                                              (c.drop_last ? "_droplast" : "_pad") + "_k" +
                                              std::to_string(static_cast<int>(c.oversample * 10)) + "_t" +
                                              std::to_string(static_cast<int>(c.repeat_threshold * 10)) + "_" +
                                              c.oversample_by + "_" + c.aug_mode;
                           return name;
                         });

TEST(SamplerSharding, DivisibleEpochNeedsNoPadding) {
  // 6 images, oversample 2 on the 3 small ones -> 9 entries; world 3 -> 3 each.
  SamplerConfig cfg;
  cfg.oversample = 2.0;
  cfg.world_size = 3;
  std::multiset<uint32_t> seen;
  for (uint32_t r = 0; r < 3; ++r) {
    cfg.rank = r;
    const auto shard = Sampler(cfg, mixed_infos(6)).epoch(4);
    ASSERT_EQ(shard.size(), 3u);
    for (const auto& t : shard) {
      EXPECT_FALSE(t.padding);
      seen.insert(t.image_index);
    }
  }
  EXPECT_EQ(seen, (std::multiset<uint32_t>{0, 0, 1, 2, 2, 3, 4, 4, 5}));
}

// --------------------------------------------------------------- offline mode

class SamplerOffline : public ::testing::TestWithParam<int> {};

TEST_P(SamplerOffline, OversampleGivesExactCopies) {
  const int k = GetParam();
  SamplerConfig cfg;
  cfg.oversample = k;
  Sampler sampler(cfg, mixed_infos(11));
  for (uint64_t seed : {0u, 1u, 12345u}) {  // integral factors: the seed does not matter
    const auto list = sampler.materialise(seed);
    EXPECT_EQ(list.size(), 6u * k + 5u);
    const auto counts = count_images(list);
    for (uint32_t i = 0; i < 11; ++i) EXPECT_EQ(counts.at(i), i % 2 == 0 ? k : 1) << "image " << i;
    EXPECT_TRUE(std::is_sorted(list.begin(), list.end()));
  }
  // Online, every epoch has the same counts too.
  for (uint64_t e = 0; e < 5; ++e) EXPECT_EQ(sampler.epoch_size(e), 6u * k + 5u);
}

INSTANTIATE_TEST_SUITE_P(PaperRatios, SamplerOffline, ::testing::Values(1, 2, 3, 4));

TEST(SamplerOffline, FractionalFactorRoundsEachImageUpOrDown) {
  SamplerConfig cfg;
  cfg.oversample = 2.5;
  Sampler sampler(cfg, mixed_infos(400));
  const auto counts = count_images(sampler.materialise(3));
  int threes = 0;
  for (uint32_t i = 0; i < 400; i += 2) {
    ASSERT_TRUE(counts.at(i) == 2 || counts.at(i) == 3);
    threes += counts.at(i) == 3;
  }
  EXPECT_NEAR(threes, 100, 30);  // Binomial(200, 0.5), sd ~ 7
  EXPECT_EQ(sampler.materialise(3), sampler.materialise(3));
  EXPECT_NE(sampler.materialise(3), sampler.materialise(4));
}

// --------------------------------------------------------------- augmentation modes

std::map<uint32_t, std::vector<bool>> flags_by_image(const std::vector<SampleTicket>& tickets) {
  std::map<uint32_t, std::vector<bool>> out;
  for (const auto& t : tickets) {
    auto& v = out[t.image_index];
    if (v.size() <= t.copy) v.resize(t.copy + 1);
    v[t.copy] = t.augment;
  }
  return out;
}

TEST(SamplerAugment, NoneNeverAugments) {
  SamplerConfig cfg;
  cfg.oversample = 3;
  Sampler sampler(cfg, mixed_infos(10));
  for (const auto& t : sampler.epoch(0)) EXPECT_FALSE(t.augment);
  EXPECT_FALSE(sampler.augment_eligible(0));
}

TEST(SamplerAugment, ReplaceAugmentsEveryCopyOfSmallObjectImagesOnly) {
  SamplerConfig cfg;
  cfg.aug_mode = "replace";
  Sampler sampler(cfg, mixed_infos(10));
  const auto flags = flags_by_image(sampler.epoch(0));
  for (uint32_t i = 0; i < 10; ++i) {
    // replace keeps one copy per image: the small-object ones are replaced
    EXPECT_EQ(flags.at(i), std::vector<bool>{i % 2 == 0}) << i;
  }
  cfg.oversample = 3;
  const auto tripled = flags_by_image(Sampler(cfg, mixed_infos(10)).epoch(2));
  for (uint32_t i = 0; i < 10; i += 2) EXPECT_EQ(tripled.at(i), std::vector<bool>(3, true));
}

TEST(SamplerAugment, AugOversampleDuplicatesTheAugmentedImage) {
  SamplerConfig cfg;
  cfg.aug_mode = "aug_oversample";
  Sampler sampler(cfg, mixed_infos(10));
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(sampler.repeat_factor(i), i % 2 == 0 ? 2.0 : 1.0);
  const auto flags = flags_by_image(sampler.materialise_tickets(0));
  for (uint32_t i = 0; i < 10; ++i) {
    const std::vector<bool> want = i % 2 == 0 ? std::vector<bool>{true, true} : std::vector<bool>{false};
    EXPECT_EQ(flags.at(i), want) << i;
  }
}

TEST(SamplerAugment, OriginalAugKeepsOneOriginalAndOneAugmentedCopy) {
  SamplerConfig cfg;
  cfg.aug_mode = "original_aug";  // aug_probability 0.5
  Sampler sampler(cfg, mixed_infos(10));
  for (uint64_t e = 0; e < 3; ++e) {
    const auto flags = flags_by_image(sampler.epoch(e));
    for (uint32_t i = 0; i < 10; ++i) {
      const std::vector<bool> want = i % 2 == 0 ? std::vector<bool>{false, true} : std::vector<bool>{false};
      EXPECT_EQ(flags.at(i), want) << i;
    }
  }
  // With a larger configured factor, copies alternate original / augmented.
  cfg.oversample = 4;
  const auto four = flags_by_image(Sampler(cfg, mixed_infos(10)).epoch(0));
  for (uint32_t i = 0; i < 10; i += 2) {
    EXPECT_EQ(four.at(i), (std::vector<bool>{false, true, false, true}));
  }
}

TEST(SamplerAugment, OriginalAugWithOtherProbabilityDrawsPerCopy) {
  SamplerConfig cfg;
  cfg.aug_mode = "original_aug";
  cfg.aug_probability = 0.25;
  cfg.oversample = 2;
  Sampler sampler(cfg, mixed_infos(1000));
  int augmented = 0, eligible_copies = 0;
  for (uint64_t e = 0; e < 4; ++e) {
    for (const auto& t : sampler.epoch(e)) {
      if (t.image_index % 2 == 1) {
        EXPECT_FALSE(t.augment);
        continue;
      }
      ++eligible_copies;
      augmented += t.augment;
    }
  }
  ASSERT_EQ(eligible_copies, 4 * 500 * 2);
  // Binomial(4000, 0.25): sd ~ 27.
  EXPECT_NEAR(augmented, 1000, 120);

  cfg.aug_probability = 1.0;
  for (const auto& t : Sampler(cfg, mixed_infos(10)).epoch(0)) EXPECT_EQ(t.augment, t.image_index % 2 == 0);
  cfg.aug_probability = 0.0;
  for (const auto& t : Sampler(cfg, mixed_infos(10)).epoch(0)) EXPECT_FALSE(t.augment);
}

// --------------------------------------------------------------- config

TEST(SamplerConfigCheck, RejectsBadValuesNamingTheKey) {
  auto expect_key = [](SamplerConfig cfg, const std::string& key) {
    try {
      Sampler s(cfg, mixed_infos(2));
      ADD_FAILURE() << "no error for " << key;
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.where().key, key);
    }
  };
  SamplerConfig c;
  c.oversample = 0.5;
  expect_key(c, "sampler.oversample");
  c = {};
  c.oversample = std::nan("");
  expect_key(c, "sampler.oversample");
  c = {};
  c.oversample_classes = {"tiny"};
  expect_key(c, "sampler.oversample_classes");
  c = {};
  c.repeat_threshold = -0.1;
  expect_key(c, "sampler.repeat_threshold");
  c = {};
  c.combine = "sum";
  expect_key(c, "sampler.combine");
  c = {};
  c.world_size = 0;
  expect_key(c, "sampler.world_size");
  c = {};
  c.world_size = 2;
  c.rank = 2;
  expect_key(c, "sampler.rank");
  c = {};
  c.aug_mode = "always";
  expect_key(c, "sampler.aug_mode");
  c = {};
  c.aug_probability = 1.5;
  expect_key(c, "sampler.aug_probability");
  c = {};
  c.oversample_by = "area";
  expect_key(c, "sampler.oversample_by");
}

// --------------------------------------------------------------- oversample_by

// Five images holding 1, 2, 3, 6 and 0 small objects (the last only large
// ones): the eligible images' mean count is (1 + 2 + 3 + 6) / 4 = 3.
std::vector<ImageInfo> counted_infos() {
  std::vector<ImageInfo> infos;
  for (uint32_t n : {1u, 2u, 3u, 6u}) {
    ImageInfo info = small_image();
    info.num_small = n;
    info.has_large = true;
    info.num_large = 1;
    infos.push_back(info);
  }
  ImageInfo large = large_image();
  large.num_large = 4;
  infos.push_back(large);
  return infos;
}

TEST(SamplerOversampleBy, CountGivesExactRepeatCountsOnAHandMadeDataset) {
  SamplerConfig cfg;
  cfg.oversample_by = "count";
  cfg.oversample = 4;  // r_i = 1 + 3 * n_i / 3 = 1 + n_i
  Sampler sampler(cfg, counted_infos());
  EXPECT_EQ(sampler.repeat_factors(), (std::vector<double>{2.0, 3.0, 4.0, 7.0, 1.0}));
  const auto counts = count_images(sampler.materialise(5));
  EXPECT_EQ(counts, (std::map<uint32_t, int>{{0, 2}, {1, 3}, {2, 4}, {3, 7}, {4, 1}}));
  // Integral factors: every epoch holds exactly these copies, whatever the seed.
  for (uint64_t e = 0; e < 3; ++e) {
    std::map<uint32_t, int> epoch_counts;
    for (const auto& t : sampler.epoch(e)) ++epoch_counts[t.image_index];
    EXPECT_EQ(epoch_counts, counts) << "epoch " << e;
  }
}

TEST(SamplerOversampleBy, CountHasTheMeanFactorOfPresence) {
  // k = 2: r = 1 + n / 3 = 4/3, 5/3, 2, 3 and 1; sum 9 = N + (k - 1) * eligible,
  // exactly presence's 2 + 2 + 2 + 2 + 1.
  SamplerConfig cfg;
  cfg.oversample = 2;
  cfg.seed = 3;
  cfg.oversample_by = "count";
  Sampler count(cfg, counted_infos());
  cfg.oversample_by = "presence";
  Sampler presence(cfg, counted_infos());
  const auto& r = count.repeat_factors();
  EXPECT_DOUBLE_EQ(r[0], 4.0 / 3.0);
  EXPECT_DOUBLE_EQ(r[1], 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(r[2], 2.0);
  EXPECT_DOUBLE_EQ(r[3], 3.0);
  EXPECT_DOUBLE_EQ(r[4], 1.0);
  double sum_count = 0, sum_presence = 0;
  for (double x : r) sum_count += x;
  for (double x : presence.repeat_factors()) sum_presence += x;
  EXPECT_DOUBLE_EQ(sum_count, 9.0);
  EXPECT_DOUBLE_EQ(sum_presence, 9.0);
  // Stochastic rounding per epoch: images 2-4 exactly 2, 3, 1 copies, images
  // 0 and 1 one or two, on average 4/3 and 5/3.
  const int epochs = 3000;
  double n0 = 0, n1 = 0, total = 0;
  for (int e = 0; e < epochs; ++e) {
    std::map<uint32_t, int> c;
    for (const auto& t : count.epoch(e)) ++c[t.image_index];
    ASSERT_EQ(c[2], 2);
    ASSERT_EQ(c[3], 3);
    ASSERT_EQ(c[4], 1);
    ASSERT_TRUE(c[0] == 1 || c[0] == 2);
    ASSERT_TRUE(c[1] == 1 || c[1] == 2);
    n0 += c[0];
    n1 += c[1];
    total += static_cast<double>(count.expanded_size(e));
  }
  // Bernoulli(1/3) and (2/3) means over 3000 epochs: sd ~ 0.0086.
  EXPECT_NEAR(n0 / epochs, 4.0 / 3.0, 0.035);
  EXPECT_NEAR(n1 / epochs, 5.0 / 3.0, 0.035);
  EXPECT_NEAR(total / epochs, 9.0, 0.07);
}

TEST(SamplerOversampleBy, PresenceIgnoresTheCountsAndIsTheDefault) {
  SamplerConfig cfg;
  cfg.seed = 42;
  cfg.oversample = 2.5;
  ASSERT_EQ(cfg.oversample_by, "presence");
  std::vector<ImageInfo> flags_only = counted_infos();
  for (ImageInfo& info : flags_only) info.num_small = info.num_medium = info.num_large = 0;
  Sampler with_counts(cfg, counted_infos());
  Sampler without(cfg, flags_only);
  EXPECT_EQ(with_counts.repeat_factors(), (std::vector<double>{2.5, 2.5, 2.5, 2.5, 1.0}));
  EXPECT_EQ(with_counts.repeat_factors(), without.repeat_factors());
  for (uint64_t e = 0; e < 4; ++e) {
    const auto a = with_counts.epoch(e), b = without.epoch(e);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].image_index, b[i].image_index);
      EXPECT_EQ(a[i].copy, b[i].copy);
      EXPECT_EQ(a[i].augment, b[i].augment);
    }
  }
}

TEST(SamplerOversampleBy, CountSumsTheOversampleClassesAndFlagsCountOnce) {
  // oversample_classes small + large: n = 2, 3, 4, 7 (one large each) and 4.
  // Mean over the five eligible images: 20 / 5 = 4; k = 3: r = 1 + n / 2.
  SamplerConfig cfg;
  cfg.oversample_by = "count";
  cfg.oversample = 3;
  cfg.oversample_classes = {"small", "large"};
  EXPECT_EQ(Sampler(cfg, counted_infos()).repeat_factors(), (std::vector<double>{2.0, 2.5, 3.0, 4.5, 3.0}));
  // An image flagged without a count (built by hand) counts once; no
  // eligible image at all leaves every factor at 1.
  cfg.oversample_classes = {"small"};
  EXPECT_EQ(Sampler(cfg, mixed_infos(4)).repeat_factors(), (std::vector<double>{3.0, 1.0, 3.0, 1.0}));
  cfg.oversample_classes = {"medium"};
  EXPECT_EQ(Sampler(cfg, mixed_infos(4)).repeat_factors(), (std::vector<double>{1.0, 1.0, 1.0, 1.0}));
}

TEST(SamplerOversampleBy, OriginalAugKeepsAtLeastTwoCopiesOfImagesWithSmallObjects) {
  SamplerConfig cfg;
  cfg.oversample_by = "count";
  cfg.oversample = 2;
  cfg.aug_mode = "original_aug";
  Sampler sampler(cfg, counted_infos());
  EXPECT_EQ(sampler.repeat_factors(), (std::vector<double>{2.0, 2.0, 2.0, 3.0, 1.0}));
  const auto flags = flags_by_image(sampler.materialise_tickets(0));
  EXPECT_EQ(flags.at(3), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(flags.at(4), (std::vector<bool>{false}));
}

TEST(SamplerOversampleBy, CountEpochsAreDeterministicFromTheSeed) {
  SamplerConfig cfg;
  cfg.oversample_by = "count";
  cfg.oversample = 2;
  cfg.seed = 99;
  std::vector<ImageInfo> infos;
  for (uint32_t i = 0; i < 200; ++i) {
    ImageInfo info = small_image();
    info.num_small = 1 + (i * 7919u) % 23u;
    infos.push_back(info);
  }
  Sampler a(cfg, infos), b(cfg, infos);
  for (uint64_t e : {0u, 1u, 5u}) {
    const auto ta = a.epoch(e), tb = b.epoch(e);
    ASSERT_EQ(ta.size(), tb.size());
    for (size_t i = 0; i < ta.size(); ++i) ASSERT_EQ(ta[i].image_index, tb[i].image_index);
  }
  cfg.seed = 100;
  const auto other = Sampler(cfg, infos).epoch(0);
  const auto mine = a.epoch(0);
  bool differ = other.size() != mine.size();
  for (size_t i = 0; !differ && i < mine.size(); ++i) differ = other[i].image_index != mine[i].image_index;
  EXPECT_TRUE(differ);
}

}  // namespace
}  // namespace pasteflow::stages
