/*
 * Anomaly Desk: tell the desk that an incident changed (a hint; the desk then reads it).
 *
 * Business Rule on the incident table: When = async, Insert + Update (and on sys_journal_field
 * inserts for work notes and comments, if you want comment hints too). It posts
 * {"sys_id", "table"} to the desk with an HMAC-SHA256 of the body, keyed with the secret the
 * desk's connection names in webhook_secret_env. The desk never trusts the payload: it only
 * polls that connection now.
 *
 * Set the system properties:
 *   x_anomaly_desk.url     https://desk.example.com/webhooks/servicenow
 *   x_anomaly_desk.secret  the shared secret (store it as a password2 property)
 * Requires the desk to be reachable from the instance (directly or through a MID server).
 */
(function executeRule(current, previous /* null when async */) {
    var url = gs.getProperty('x_anomaly_desk.url');
    var secret = gs.getProperty('x_anomaly_desk.secret');
    if (!url || !secret) {
        return;
    }
    var body = JSON.stringify({ sys_id: current.getUniqueValue(), table: current.getTableName() });
    // HMAC-SHA256 over the exact bytes sent, hex encoded, as the desk checks it.
    var key = GlideStringUtil.base64Encode(secret);
    var mac = new CertificateEncryption().generateMac(key, 'HmacSHA256', body);  // base64
    var hex = toHex(GlideStringUtil.base64DecodeAsBytes(mac));
    var request = new sn_ws.RESTMessageV2();
    request.setEndpoint(url);
    request.setHttpMethod('POST');
    request.setRequestHeader('Content-Type', 'application/json');
    request.setRequestHeader('X-Snow-Signature', 'sha256=' + hex);
    request.setRequestBody(body);
    request.executeAsync();  // a hint: a lost one only delays the change until the next poll

    function toHex(bytes) {
        var out = '';
        for (var i = 0; i < bytes.length; i++) {
            var b = (bytes[i] & 0xff).toString(16);
            out += (b.length === 1 ? '0' : '') + b;
        }
        return out;
    }
})(current, previous);
