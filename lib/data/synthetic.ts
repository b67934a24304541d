/**
 * The embedded default data: a synthetic world generated from a seed, with the structure the study is
 * about. K latent topics; each item has a main topic, a topic mixture, a place in its topic's "series"
 * (so item order carries sequential signal) and a Zipf-like popularity; a share of items is rare (cold).
 * Users prefer a few topics, drift between them over time, and within a topic either continue a series
 * or pick by popularity. Every item has a title built from its topics' word pools plus noise words, so
 * text carries real signal about the item.
 */
import { Sequences } from '../sequences';
import { pickWeighted, seededRandom } from '../util/random';
import { positiveInt, nonNegativeInt } from '../validate';

export interface SyntheticOptions {
  seed?: number;
  /** Multiplies users and items (1 = default size: 2,000 users, 800 items). */
  scale?: number;
  topics?: number;
  /** Share of items that are rare (cold) items. */
  coldShare?: number;
  /** Longest sequence generated (the study keeps the last L + 3). */
  maxLength?: number;
}

export interface SyntheticItem {
  id: string;
  topic: number;
  topics: number[];
  popularity: number;
  cold: boolean;
  title: string;
}

export interface SyntheticWorld {
  options: Required<SyntheticOptions>;
  items: SyntheticItem[]; // items[i - 1] is item index i
  userIds: string[];
  sequences: Sequences;
}

const TOPIC_WORDS = [
  ['galaxy', 'orbit', 'rocket', 'planet', 'nebula', 'comet', 'lunar', 'stellar'],
  ['recipe', 'garlic', 'oven', 'pasta', 'spice', 'bakery', 'sauce', 'grill'],
  ['guitar', 'melody', 'drum', 'chorus', 'concert', 'violin', 'rhythm', 'album'],
  ['soccer', 'goal', 'league', 'stadium', 'coach', 'tennis', 'marathon', 'score'],
  ['market', 'stock', 'bond', 'invest', 'dividend', 'budget', 'trade', 'profit'],
  ['forest', 'river', 'hiking', 'camp', 'canyon', 'trail', 'summit', 'wildlife'],
  ['robot', 'laptop', 'circuit', 'software', 'sensor', 'chip', 'network', 'cloud'],
  ['fashion', 'denim', 'jacket', 'silk', 'sneaker', 'scarf', 'cotton', 'boutique'],
  ['puzzle', 'castle', 'dragon', 'quest', 'wizard', 'arcade', 'knight', 'treasure'],
  ['garden', 'tulip', 'compost', 'seed', 'orchid', 'harvest', 'bloom', 'soil'],
  ['doctor', 'vitamin', 'clinic', 'sleep', 'fitness', 'yoga', 'diet', 'therapy'],
  ['painting', 'sculpture', 'canvas', 'museum', 'portrait', 'gallery', 'sketch', 'mural'],
];
const NOISE_WORDS = ['new', 'classic', 'deluxe', 'edition', 'set', 'mini', 'pro', 'original', 'series', 'vol', 'pack', 'special'];

export function generateSyntheticWorld(options: SyntheticOptions = {}): SyntheticWorld {
  const opt: Required<SyntheticOptions> = {
    seed: nonNegativeInt(options.seed ?? 2023, 'seed'),
    scale: options.scale ?? 1,
    topics: positiveInt(options.topics ?? 8, 'topics'),
    coldShare: options.coldShare ?? 0.2,
    maxLength: positiveInt(options.maxLength ?? 30, 'maxLength'),
  };
  if (!(opt.scale > 0)) throw new Error(`Expected a positive number for scale but received ${opt.scale}`);
  const r = seededRandom(opt.seed);
  const K = opt.topics;
  const numItems = Math.round(800 * opt.scale);
  const numUsers = Math.round(2000 * opt.scale);

  // Items: a main topic, a secondary topic, a popularity weight (Zipf over a random order; cold items rare).
  const items: SyntheticItem[] = [];
  const byTopic: number[][] = Array.from({ length: K }, () => []);
  const ranks = Array.from({ length: numItems }, (_, i) => i + 1);
  for (let i = ranks.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [ranks[i], ranks[j]] = [ranks[j], ranks[i]];
  }
  for (let i = 0; i < numItems; i++) {
    const topic = Math.floor(r() * K);
    let second = Math.floor(r() * K);
    if (second === topic) second = (second + 1) % K;
    const cold = r() < opt.coldShare;
    const popularity = cold ? 0.02 / numItems : 1 / Math.pow(ranks[i], 0.8);
    const words = TOPIC_WORDS[topic % TOPIC_WORDS.length];
    const words2 = TOPIC_WORDS[second % TOPIC_WORDS.length];
    const title: string[] = [];
    const n = 4 + Math.floor(r() * 4);
    for (let w = 0; w < n; w++) {
      const x = r();
      title.push(x < 0.6 ? words[Math.floor(r() * words.length)] : x < 0.8 ? words2[Math.floor(r() * words2.length)] : NOISE_WORDS[Math.floor(r() * NOISE_WORDS.length)]);
    }
    title.push(String(1 + Math.floor(r() * 99)));
    items.push({ id: `item${String(i + 1).padStart(5, '0')}`, topic, topics: [topic, second], popularity, cold, title: title.join(' ') });
    byTopic[topic].push(i + 1);
  }
  const topicWeights = byTopic.map((list) => Float64Array.from(list, (it) => items[it - 1].popularity));

  // Users: 2-3 favourite topics with drifting weights; series continuation inside a topic.
  const userIds: string[] = [];
  const offsets = new Int32Array(numUsers + 1);
  const seqItems: number[] = [];
  for (let u = 0; u < numUsers; u++) {
    userIds.push(`user${String(u + 1).padStart(6, '0')}`);
    const prefs = new Float64Array(K).fill(0.02);
    const favourites = 2 + Math.floor(r() * 2);
    for (let f = 0; f < favourites; f++) prefs[Math.floor(r() * K)] += 1 + r();
    const length = Math.min(opt.maxLength, 5 + Math.floor(-Math.log(1 - r()) * 8));
    let topic = pickWeighted(r, prefs);
    let last = -1;
    const seen = new Set<number>();
    for (let t = 0; t < length; t++) {
      // drift: preferences move a little towards a random topic at every step
      if (r() < 0.15) prefs[Math.floor(r() * K)] += 0.5;
      if (r() < 0.25) topic = pickWeighted(r, prefs);
      const list = byTopic[topic];
      if (list.length === 0) continue;
      let item: number;
      const pos = last >= 0 ? list.indexOf(last) : -1;
      if (pos >= 0 && r() < 0.5) item = list[(pos + 1 + Math.floor(r() * 2)) % list.length];
      else item = list[pickWeighted(r, topicWeights[topic])];
      if (seen.has(item)) item = list[pickWeighted(r, topicWeights[topic])];
      if (seen.has(item)) continue;
      seen.add(item);
      seqItems.push(item);
      last = item;
    }
    offsets[u + 1] = seqItems.length;
  }
  return { options: opt, items, userIds, sequences: new Sequences(offsets, Int32Array.from(seqItems), numItems) };
}
