/**
 * The decisions of src/http/conditional.ts on their own; the same answers against a
 * real nginx are in test/integration/http-files.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { etagListMatches, etagOf, lastModifiedOf, parseRange, planFileResponse } from '../../src/http/conditional.js';

const f = { size: 1000, mtimeMs: Date.parse('2026-01-02T03:04:05.678Z') };

describe('validators', () => {
  it("are nginx's: ETag mtime-size in hex, Last-Modified in whole seconds", () => {
    expect(etagOf(f)).toBe('"695735a5-3e8"');
    expect(lastModifiedOf(f)).toBe('Fri, 02 Jan 2026 03:04:05 GMT');
  });

  it('If-None-Match compares weakly, in lists; If-Match strongly', () => {
    expect(etagListMatches('W/"695735a5-3e8"', '"695735a5-3e8"', true)).toBe(true);
    expect(etagListMatches('W/"695735a5-3e8"', '"695735a5-3e8"', false)).toBe(false);
    expect(etagListMatches(' "a" ,"695735a5-3e8"', '"695735a5-3e8"', false)).toBe(true);
    expect(etagListMatches('*', '"x"', false)).toBe(true);
  });
});

describe('parseRange', () => {
  it('single, open, suffix and clipped ranges as [start, end)', () => {
    expect(parseRange('bytes=0-99', 1000)).toEqual([[0, 100]]);
    expect(parseRange('bytes=990-', 1000)).toEqual([[990, 1000]]);
    expect(parseRange('bytes=-10', 1000)).toEqual([[990, 1000]]);
    expect(parseRange('bytes=-5000', 1000)).toEqual([[0, 1000]]);
    expect(parseRange('bytes=900-99999', 1000)).toEqual([[900, 1000]]);
    expect(parseRange('bytes= 1 - 2 , 5-6', 1000)).toEqual([
      [1, 3],
      [5, 7],
    ]);
  });

  it('unsatisfiable, ignored and malformed', () => {
    expect(parseRange('bytes=1000-', 1000)).toBe('unsatisfiable');
    expect(parseRange('bytes=5-2', 1000)).toBe('unsatisfiable');
    expect(parseRange('bytes=-0', 1000)).toBe('unsatisfiable');
    expect(parseRange('bytes=x', 1000)).toBe('unsatisfiable');
    expect(parseRange('bytes=1-2;', 1000)).toBe('unsatisfiable');
    expect(parseRange('bytes=99999999999999999999-', 1000)).toBe('unsatisfiable');
    expect(parseRange('items=0-1', 1000)).toBe('ignore');
    expect(parseRange('bytes=0-0', 0)).toBe('ignore');
    expect(parseRange('bytes=0-,0-', 1000)).toBe('ignore');
  });
});

describe('planFileResponse', () => {
  const etag = etagOf(f);
  const lm = lastModifiedOf(f);
  it('304 only when every validator present says unchanged', () => {
    expect(planFileResponse({ ifNoneMatch: etag }, f).status).toBe(304);
    expect(planFileResponse({ ifModifiedSince: lm }, f).status).toBe(304);
    expect(planFileResponse({ ifNoneMatch: etag, ifModifiedSince: 'Sat, 03 Jan 2026 00:00:00 GMT' }, f).status).toBe(200);
    expect(planFileResponse({ ifModifiedSince: 'Sat, 03 Jan 2026 00:00:00 GMT' }, f).status).toBe(200);
  });

  it('412 for a failed If-Match or If-Unmodified-Since (also an unparsable one)', () => {
    expect(planFileResponse({ ifMatch: '"nope"' }, f).status).toBe(412);
    expect(planFileResponse({ ifUnmodifiedSince: 'Thu, 01 Jan 2026 00:00:00 GMT' }, f).status).toBe(412);
    expect(planFileResponse({ ifUnmodifiedSince: 'soon' }, f).status).toBe(412);
    expect(planFileResponse({ ifMatch: etag, ifUnmodifiedSince: lm }, f).status).toBe(200);
  });

  it('If-Range: a match keeps the range, anything else gets the whole file', () => {
    expect(planFileResponse({ range: 'bytes=0-9', ifRange: etag }, f)).toEqual({ status: 206, ranges: [[0, 10]] });
    expect(planFileResponse({ range: 'bytes=0-9', ifRange: lm }, f)).toEqual({ status: 206, ranges: [[0, 10]] });
    expect(planFileResponse({ range: 'bytes=0-9', ifRange: '"other"' }, f)).toEqual({ status: 200, ranges: [[0, 1000]] });
    expect(planFileResponse({ range: 'bytes=5000-' }, f)).toEqual({ status: 416, ranges: [] });
  });
});
