/**
 * The one-user-a-line layout (S3Rec / IDvs.MoRec `users.tsv` style): `user item item ...` in time order,
 * separated by spaces or tabs. Item ids are re-indexed 1..N in order of first appearance (0 = padding).
 */
import * as fs from 'node:fs';
import { MorecError } from '../errors';
import { Sequences } from '../sequences';

export interface UserLines {
  sequences: Sequences;
  userIds: string[];
  itemIds: string[]; // itemIds[i - 1] is the external id of item index i
}

export function readUserLines(file: string): UserLines {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new MorecError('EINVAL', `${file}: cannot read (${(e as Error).message})`);
  }
  const itemIndex = new Map<string, number>();
  const itemIds: string[] = [];
  const userIds: string[] = [];
  const offsets: number[] = [0];
  const items: number[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    const fields = line.split(/[ \t]+/);
    if (fields.length < 2) throw new MorecError('EFORMAT', `${file}:${i + 1}: expected 'user item item ...' but the line has no items`);
    userIds.push(fields[0]);
    for (let f = 1; f < fields.length; f++) {
      let idx = itemIndex.get(fields[f]);
      if (idx === undefined) {
        itemIds.push(fields[f]);
        idx = itemIds.length;
        itemIndex.set(fields[f], idx);
      }
      items.push(idx);
    }
    offsets.push(items.length);
  }
  if (userIds.length === 0) throw new MorecError('EFORMAT', `${file}: no users`);
  return { sequences: new Sequences(Int32Array.from(offsets), Int32Array.from(items), itemIds.length), userIds, itemIds };
}
