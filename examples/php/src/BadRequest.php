<?php

declare(strict_types=1);

namespace InventorySyncExample;

/** The request body or query is not the shape of the API: answered 400. */
final class BadRequest extends \RuntimeException
{
}
