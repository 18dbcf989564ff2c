// A real authorization server for mcplex's identity tests and demo: the OpenID-certified npm package
// `oidc-provider`, configured here (this file is configuration, not an implementation of OAuth).
//
// - Callers get JWT access tokens with the client credentials grant. Each caller is a client whose id
//   is the token's `sub`; `claims` adds claims (groups, say) to their tokens.
// - RFC 8693 token exchange is registered as an extension grant: the subject token must be a token this
//   server issued for `subjectAudience`; the result is a JWT for the requested `audience` (or
//   `resource`) with the caller as `sub` and the actor (the actor token's `sub`, else the client) in
//   `act`. Subjects listed in `refuse` are refused with `invalid_grant`.
// - GET /stats answers how many exchanges were made (tests check the cache with it).
//
// Input: environment NODE_MODULES_DIR (a node_modules directory holding oidc-provider) and AUTHZ_CONFIG
// (JSON: {callers: {name: {claims}}, exchangers: {id: secret}, subjectAudience, refuse: [sub], ttl}).
// Output: one line `listening <port>` on stdout once it serves.
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';

// Whoever started the server may stop reading its output; that must not stop the server.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

const resolve = createRequire(join(resolvePath(process.env.NODE_MODULES_DIR), 'resolver.js')).resolve;
const load = (name) => import(pathToFileURL(resolve(name)).href);
const { default: Provider, errors } = await load('oidc-provider');
const jose = await load('jose');

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const settings = JSON.parse(process.env.AUTHZ_CONFIG || '{}');
const callers = settings.callers ?? {};
const exchangers = settings.exchangers ?? {};
const ttl = settings.ttl ?? 300;
const refuse = new Set(settings.refuse ?? []);

const server = createServer();
await new Promise((done) => server.listen(0, '127.0.0.1', done));
const issuer = `http://127.0.0.1:${server.address().port}`;

const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
const signing = { ...(await jose.exportJWK(privateKey)), kid: `key-${Date.now()}`, alg: 'RS256', use: 'sig' };

// Claims of a token being minted, by token object (the extension grant sets them before saving).
const pending = new WeakMap();
const resourceServer = (audience) => ({
  audience,
  scope: 'mcp',
  accessTokenFormat: 'jwt',
  accessTokenTTL: ttl,
  jwt: { sign: { alg: 'RS256' } },
});

const provider = new Provider(issuer, {
  jwks: { keys: [signing] },
  clients: [
    ...Object.keys(callers).map((id) => ({
      client_id: id,
      client_secret: `${id}-secret`,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'mcp',
    })),
    ...Object.entries(exchangers).map(([id, secret]) => ({
      client_id: id,
      client_secret: secret,
      grant_types: [TOKEN_EXCHANGE, 'client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'mcp',
    })),
  ],
  scopes: ['mcp'],
  features: {
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => resourceServer(resource),
    },
  },
  extraTokenClaims: (_ctx, token) => pending.get(token) ?? callers[token.clientId]?.claims,
});

let exchanges = 0;
const keys = jose.createLocalJWKSet({ keys: [{ ...(await jose.exportJWK(publicKey)), kid: signing.kid, alg: 'RS256' }] });
const verify = async (token, audience) => {
  try {
    const { payload } = await jose.jwtVerify(token, keys, { issuer, ...(audience ? { audience } : {}) });
    return payload;
  } catch (error) {
    throw new errors.InvalidGrant(`token not accepted: ${error.message}`);
  }
};

provider.registerGrantType(
  TOKEN_EXCHANGE,
  async (ctx) => {
    const { params, client } = ctx.oidc;
    exchanges += 1;
    if (params.subject_token_type !== ACCESS_TOKEN) {
      throw new errors.InvalidRequest('subject_token_type must be an access token');
    }
    const subject = await verify(params.subject_token, settings.subjectAudience);
    if (refuse.has(subject.sub)) {
      throw new errors.InvalidGrant(`${subject.sub} may not be represented`);
    }
    const actor = params.actor_token ? await verify(params.actor_token) : undefined;
    const audience = params.audience ?? params.resource;
    if (!audience) throw new errors.InvalidTarget('audience or resource is required');
    const token = new provider.AccessToken({ accountId: subject.sub, client, scope: 'mcp', gty: 'token-exchange' });
    token.resourceServer = new provider.ResourceServer(audience, resourceServer(audience));
    pending.set(token, { act: { sub: actor?.sub ?? client.clientId }, ...callers[subject.sub]?.claims });
    const value = await token.save();
    ctx.body = {
      access_token: value,
      issued_token_type: ACCESS_TOKEN,
      token_type: 'Bearer',
      expires_in: token.expiration,
    };
  },
  ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'audience', 'resource', 'scope', 'requested_token_type'],
);

const handle = provider.callback();
server.on('request', (request, response) => {
  if (request.url === '/stats') {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ exchanges }));
    return;
  }
  handle(request, response);
});
console.log(`listening ${server.address().port}`);
