<?php

declare(strict_types=1);

namespace InventorySyncExample;

use PDO;
use PDOException;
use Throwable;

/**
 * The HTTP sync API of examples/README.md, on top of inventory_sync.sync_push and sync_pull.
 *
 * The database decides every outcome. This class checks the request's outer shape, binds it as
 * one parameter, and maps the database's answers and SQLSTATEs to HTTP status codes.
 *
 * JSON from the database is passed on as text: it is never decoded into PHP values and encoded
 * again. json_decode turns every number into an int or a float, so a price of 999.00 would come
 * back as 999.0 and an id beyond 2^63 or a long decimal would lose digits; the extension keeps
 * numbers exactly as sent, and so does this backend. Each outcome's status is read in SQL (`->>`),
 * next to the outcome's text. The request body goes to the database as the text it came as, for
 * the same reason; PHP decodes it only to check its shape.
 */
final class SyncEndpoint
{
    private const ROUTES = [
        '/sync/change' => 'POST',
        '/sync/push' => 'POST',
        '/sync/pull' => 'GET',
    ];

    /** Attempts for a serialization failure or a deadlock (first try included). */
    public const ATTEMPTS = 3;
    private const RETRY_SQLSTATES = ['40001', '40P01'];

    // One change, as an array of one, to sync_push; its outcome as text, and its status.
    private const PUSH_ONE_SQL = <<<'SQL'
        SELECT r.outcome::text AS outcome,
               r.outcome->>'status' AS status
          FROM jsonb_array_elements(
                 inventory_sync.sync_push(jsonb_build_array(CAST(:change AS jsonb)))
               ) WITH ORDINALITY AS r(outcome, n)
         ORDER BY r.n
        SQL;

    // The whole body goes in; sync_push gets its "changes" member, whatever its JSON type (an
    // array, or something sync_push refuses with 22023).
    private const PUSH_SQL = <<<'SQL'
        SELECT r.outcome::text AS outcome,
               r.outcome->>'status' AS status
          FROM jsonb_array_elements(
                 inventory_sync.sync_push(CAST(:body AS jsonb) -> 'changes')
               ) WITH ORDINALITY AS r(outcome, n)
         ORDER BY r.n
        SQL;

    private const PULL_SQL = <<<'SQL'
        SELECT inventory_sync.sync_pull(CAST(:since AS text), CAST(:lim AS integer))::text AS page
        SQL;

    private ?PDO $pdo = null;

    /** @param \Closure(): PDO $connect */
    public function __construct(private readonly \Closure $connect)
    {
    }

    /** @param array<string, mixed> $query the parsed query string ($_GET) */
    public function handle(string $method, string $target, array $query, string $body): Response
    {
        $path = parse_url($target, PHP_URL_PATH);
        if (!is_string($path) || !isset(self::ROUTES[$path])) {
            return Response::error(404, 'not found');
        }
        if ($method !== self::ROUTES[$path]) {
            return Response::error(405, 'method not allowed', [], ['Allow' => self::ROUTES[$path]]);
        }
        try {
            return match ($path) {
                '/sync/change' => $this->change($body),
                '/sync/push' => $this->push($body),
                '/sync/pull' => $this->pull($query),
            };
        } catch (BadRequest $e) {
            return Response::error(400, $e->getMessage());
        } catch (DatabaseFailure $e) {
            return $this->failure($e, $path === '/sync/pull' && isset($query['since']));
        } catch (Throwable $e) {
            error_log(sprintf('%s %s: %s', $method, $path, $e));
            return Response::error(500, 'internal error');
        }
    }

    /** POST /sync/change: one change; its outcome as the database answered it. */
    private function change(string $body): Response
    {
        if (!self::decode($body) instanceof \stdClass) {
            throw new BadRequest('the body must be a JSON object: one change');
        }
        // sync_push answers a change's own faults as its outcome, and aborts the call on the others
        // (a serialization failure, a read-only database, ...): those arrive here as exceptions.
        $outcome = $this->withRetries(function () use ($body): array {
            $rows = $this->query(self::PUSH_ONE_SQL, [':change' => $body]);
            if (count($rows) !== 1) {
                throw new \UnexpectedValueException(sprintf('sync_push answered %d outcomes for 1 change', count($rows)));
            }
            return $rows[0];
        });
        return Response::json(self::httpStatus($outcome), $outcome['outcome']);
    }

    /** POST /sync/push: `{"changes": [...]}`; `{"results": [...]}`, each with its "http" code. */
    private function push(string $body): Response
    {
        $request = self::decode($body);
        if (!$request instanceof \stdClass || !property_exists($request, 'changes')) {
            throw new BadRequest('the body must be a JSON object {"changes": [change, ...]}');
        }
        // A failure of the whole call rolls all of it back, so the whole call can be retried.
        $outcomes = $this->withRetries(fn (): array => $this->query(self::PUSH_SQL, [':body' => $body]));
        $results = array_map(
            static fn (array $o): string => self::withHttpField($o['outcome'], self::httpStatus($o)),
            $outcomes,
        );
        return Response::json(200, '{"results": [' . implode(', ', $results) . ']}');
    }

    /** GET /sync/pull?since=CURSOR&limit=N: sync_pull's answer as it is. */
    private function pull(array $query): Response
    {
        $since = $query['since'] ?? null;
        if ($since !== null && !is_string($since)) {
            throw new BadRequest('since must be one cursor');
        }
        $limit = $query['limit'] ?? '1000';
        if (!is_string($limit) || preg_match('/^[+-]?[0-9]+$/D', $limit) !== 1) {
            throw new BadRequest('limit must be an integer');
        }
        // The limit goes in as text: out of sync_pull's range (22023) or of integer's (22003),
        // the database says so.
        $rows = $this->withRetries(fn (): array => $this->query(self::PULL_SQL, [':since' => $since, ':lim' => $limit]));
        return Response::json(200, $rows[0]['page']);
    }

    /** The status code /sync/change answers for an outcome. */
    private static function httpStatus(array $outcome): int
    {
        return match ($outcome['status']) {
            'applied', 'merged' => 200,
            'conflict' => 409,
            'rejected', 'error' => 422,
            default => 500,
        };
    }

    /**
     * 503: the database cannot take the call now (read-only, or the connection failed or was
     * ended by a server shutdown), or a serialization failure or deadlock outlasted the retries.
     */
    private static function isUnavailable(?string $sqlstate): bool
    {
        return in_array($sqlstate, [...self::RETRY_SQLSTATES, '25006', '57P01', '57P02', '57P03'], true)
            || ($sqlstate !== null && str_starts_with($sqlstate, '08'));
    }

    private function failure(DatabaseFailure $e, bool $cursorGiven): Response
    {
        $state = $e->sqlstate;
        if ($e->connectionLost) {
            error_log('database unavailable: ' . $e->getMessage());
            return Response::error(503, 'database unavailable');
        }
        if (self::isUnavailable($state)) {
            error_log(sprintf('database unavailable: %s %s', $state, $e->getMessage()));
            return Response::error(503, $e->getMessage(), ['sqlstate' => $state]);
        }
        if ($state !== null && in_array(substr($state, 0, 2), ['22', '42'], true)) {
            return Response::error(422, $e->getMessage(), ['sqlstate' => $state]);
        }
        if ($state === '55000' && $cursorGiven) {
            return Response::error(410, $e->getMessage(), ['sqlstate' => $state]);
        }
        error_log(sprintf('database error %s: %s', $state ?? '(no SQLSTATE)', $e->getPrevious() ?? $e));
        return Response::error(500, 'internal error');
    }

    /**
     * Runs $call, again after a serialization failure or a deadlock, at most ATTEMPTS times in
     * all. Each attempt is its own transaction (autocommit), rolled back whole when it failed.
     *
     * @template T
     * @param callable(): T $call
     * @return T
     */
    private function withRetries(callable $call): mixed
    {
        for ($attempt = 1; ; $attempt++) {
            try {
                return $call();
            } catch (DatabaseFailure $e) {
                if (!in_array($e->sqlstate, self::RETRY_SQLSTATES, true) || $attempt >= self::ATTEMPTS) {
                    throw $e;
                }
                error_log(sprintf('SQLSTATE %s, attempt %d of %d: retrying', $e->sqlstate, $attempt, self::ATTEMPTS));
                usleep(random_int(10_000, 50_000) * $attempt);
            }
        }
    }

    /**
     * One prepared statement with bound text parameters (NULL bound as NULL). PDO hands jsonb
     * and every other type back as strings.
     *
     * @param array<string, ?string> $params
     * @return list<array<string, ?string>>
     */
    private function query(string $sql, array $params): array
    {
        try {
            $this->pdo ??= ($this->connect)();
            $statement = $this->pdo->prepare($sql);
            foreach ($params as $name => $value) {
                $statement->bindValue($name, $value, $value === null ? PDO::PARAM_NULL : PDO::PARAM_STR);
            }
            $statement->execute();
            return $statement->fetchAll(PDO::FETCH_ASSOC);
        } catch (PDOException $e) {
            $failure = DatabaseFailure::fromPdo($e, $this->pdo);
            if ($failure->connectionLost) {
                $this->pdo = null;
            }
            throw $failure;
        }
    }

    /** The body as PHP values, only to check its shape; BadRequest if it is not JSON. */
    private static function decode(string $body): mixed
    {
        try {
            return json_decode($body, false, 512, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING);
        } catch (\JsonException $e) {
            throw new BadRequest('the body is not JSON: ' . $e->getMessage());
        }
    }

    /** Adds `"http": code` to an outcome, a JSON object as text, without decoding it. */
    private static function withHttpField(string $outcome, int $status): string
    {
        $outcome = trim($outcome);
        if (!str_starts_with($outcome, '{') || !str_ends_with($outcome, '}')) {
            throw new \UnexpectedValueException('an outcome that is not a JSON object: ' . $outcome);
        }
        $inner = trim(substr($outcome, 0, -1));
        return $inner === '{' ? "{\"http\": $status}" : "$inner, \"http\": $status}";
    }
}
