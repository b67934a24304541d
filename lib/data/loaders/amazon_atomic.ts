/**
 * Amazon in the UniSRec/RecBole atomic layout: `<Name>.train.inter`, `.valid.inter`, `.test.inter`
 * (`user \t item_id_list \t item_id`, header line), optional `<Name>.item2index` (`asin \t index`) and
 * `<Name>.text` (`asin \t text`, header line). A user's sequence is their test history plus the test item;
 * the validation file must agree with it (its target is the second-to-last item).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MorecError } from '../../errors';
import { Progress, RawBuilder, RawData, readLines, formatError } from '../raw';

export function findAtomicName(dir: string): string | undefined {
  const tests = fs.readdirSync(dir).filter((f) => f.endsWith('.test.inter'));
  return tests.length === 1 ? tests[0].slice(0, -'.test.inter'.length) : undefined;
}

async function readTwoColumns(file: string, header: boolean, onProgress?: Progress): Promise<Array<[string, string, number]>> {
  const out: Array<[string, string, number]> = [];
  for await (const { line, lineNo } of readLines(file, onProgress)) {
    if (header && lineNo === 1) continue;
    if (!line.trim()) continue;
    const tab = line.indexOf('\t');
    if (tab < 0) throw formatError(file, lineNo, "expected 'id \\t value'");
    out.push([line.slice(0, tab), line.slice(tab + 1), lineNo]);
  }
  return out;
}

export async function loadAmazonAtomic(dir: string, onProgress?: Progress): Promise<RawData> {
  const name = findAtomicName(dir);
  if (!name) throw new MorecError('EINVAL', `${dir}: expected one '<Name>.test.inter' file (UniSRec/RecBole atomic layout)`);
  const file = (ext: string) => path.join(dir, `${name}.${ext}`);
  const files = [file('test.inter'), file('valid.inter')];
  // index -> asin, when the mapping is there
  let asinOf: Map<string, string> | undefined;
  if (fs.existsSync(file('item2index'))) {
    files.push(file('item2index'));
    asinOf = new Map();
    for (const [asin, idx] of await readTwoColumns(file('item2index'), false)) asinOf.set(idx.trim(), asin.trim());
  }
  const itemId = (raw: string, f: string, lineNo: number) => {
    const id = raw.trim();
    if (!id) throw formatError(f, lineNo, 'empty item id');
    if (!asinOf) return id;
    const asin = asinOf.get(id);
    if (asin === undefined) throw formatError(f, lineNo, `unknown item id '${id}' (not in ${path.basename(file('item2index'))})`);
    return asin;
  };
  const b = new RawBuilder();
  const seqOf = new Map<string, number[]>();
  for await (const { line, lineNo } of readLines(file('test.inter'), onProgress)) {
    if (lineNo === 1 || !line.trim()) continue;
    const f = line.split('\t');
    if (f.length !== 3) throw formatError(file('test.inter'), lineNo, `expected 3 tab-separated columns (user, item_id_list, item_id) but found ${f.length}`);
    const user = f[0].trim();
    if (!user) throw formatError(file('test.inter'), lineNo, 'empty user id');
    const history = f[1].trim() ? f[1].trim().split(/ +/) : [];
    const seq = [...history, f[2]].map((x) => b.item(itemId(x, file('test.inter'), lineNo)));
    seqOf.set(user, seq);
    b.addUser(user, seq);
  }
  for await (const { line, lineNo } of readLines(file('valid.inter'))) {
    if (lineNo === 1 || !line.trim()) continue;
    const f = line.split('\t');
    if (f.length !== 3) throw formatError(file('valid.inter'), lineNo, `expected 3 tab-separated columns but found ${f.length}`);
    const seq = seqOf.get(f[0].trim());
    if (!seq) throw formatError(file('valid.inter'), lineNo, `user '${f[0].trim()}' is not in ${path.basename(file('test.inter'))}`);
    const target = b.itemIndex.get(itemId(f[2], file('valid.inter'), lineNo));
    if (seq.length < 2 || target !== seq[seq.length - 2])
      throw formatError(file('valid.inter'), lineNo, `validation item does not match the second-to-last item of the user's test history`);
  }
  const raw = b.build('amazon-atomic', files);
  if (fs.existsSync(file('text'))) {
    raw.files.push(file('text'));
    const text: (string | null)[] = new Array(raw.itemIds.length).fill(null);
    for (const [asin, t] of await readTwoColumns(file('text'), true)) {
      const idx = b.itemIndex.get(asin.trim());
      if (idx !== undefined) text[idx - 1] = t.trim();
    }
    raw.text = text;
  }
  return raw;
}
