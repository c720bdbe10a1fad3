// Unit tests of src/oci/errors.ts: OciError status codes and the OCI error envelope.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OciError } from '../../../src/oci/errors.ts';

test('errors carry the status of the OCI table and the envelope shape', () => {
  const e = new OciError('RANGE_INVALID', { size: 3 });
  assert.equal(e.status, 416);
  assert.deepEqual(e.toBody(), { errors: [{ code: 'RANGE_INVALID', message: 'invalid content range', detail: { size: 3 } }] });
  assert.equal(new OciError('TOOMANYREQUESTS').status, 429);
  assert.equal(new OciError('UNSUPPORTED').status, 405);
});
