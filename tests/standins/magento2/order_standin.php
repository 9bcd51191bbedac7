<?php
/**
 * A stand-in for the Magento classes the module's order store touches, as far as it touches them
 * (Magento itself cannot be installed here): an order repository that honours the search filters, an
 * order and a payment that record what the store registers. Run with the rendered module root as the
 * only argument; prints what happened as JSON (tests/templates/test_magento2.py).
 */
namespace Magento\Framework\Api {
    class SearchCriteriaBuilderFactory { public $filters = []; public function create() { $this->filters = []; return new SearchCriteriaBuilder($this); } }
    class SearchCriteriaBuilder {
        private $factory;
        public function __construct($factory) { $this->factory = $factory; }
        public function addFilter($field, $value) { $this->factory->filters[] = [$field, $value]; return $this; }
        public function create() { return $this->factory->filters; }
    }
}
namespace Magento\Framework\Event { interface ManagerInterface { public function dispatch($eventName, array $data = []); } }
namespace Magento\Sales\Api {
    interface CreditmemoManagementInterface {}
    interface OrderRepositoryInterface { public function getList($criteria); public function save($order); }
}
namespace Magento\Sales\Model\Order {
    class Config { public function getStateDefaultStatus($state) { return $state; } }
    class CreditmemoFactory {}
    class Invoice {}
    class Payment {
        public $info = []; public $notifications = [];
        public function getMethod() { return \PspNordbank\Payment\Model\Config::METHOD_CODE; }
        public function getAdditionalInformation($key) { return $this->info[$key] ?? null; }
        public function setAdditionalInformation($key, $value) { $this->info[$key] = $value; return $this; }
        public function getAuthorizationTransaction() { return false; }
        public function setTransactionId($id) { $this->notifications[] = ['transaction', $id]; return $this; }
        public function setParentTransactionId($id) { return $this; }
        public function setIsTransactionClosed($closed) { return $this; }
        public function registerCaptureNotification($amount) { $this->notifications[] = ['capture', $amount]; return $this; }
        public function registerAuthorizationNotification($amount) { $this->notifications[] = ['authorization', $amount]; return $this; }
        public function getCreatedInvoice() { return null; }
    }
}
namespace Magento\Sales\Model\Order\Email\Sender {
    class InvoiceSender { public function send($invoice) { return true; } }
    class OrderSender { public function send($order) { return true; } }
}
namespace Psr\Log { interface LoggerInterface { public function error($message, array $context = []); } }
namespace Magento\Sales\Model {
    class Order {
        const STATE_NEW = 'new'; const STATE_PROCESSING = 'processing'; const STATE_CANCELED = 'canceled';
        const STATE_COMPLETE = 'complete'; const STATE_HOLDED = 'holded';
        public $data = ['state' => 'new', 'status' => 'pending', 'held' => false]; public $comments = []; private $payment;
        public function __construct(array $data, $payment) { $this->data = array_merge($this->data, $data); $this->payment = $payment; }
        public function getPayment() { return $this->payment; }
        public function getIncrementId() { return $this->data['increment_id']; }
        public function getStoreId() { return $this->data['store_id']; }
        public function getState() { return $this->data['state']; }
        public function getStatus() { return $this->data['status']; }
        public function setState($state) { $this->data['state'] = $state; return $this; }
        public function setStatus($status) { $this->data['status'] = $status; return $this; }
        public function canInvoice() { return true; }
        public function canHold() { return !$this->data['held']; }
        public function hold() { $this->data['held'] = true; $this->data['state'] = self::STATE_HOLDED; return $this; }
        public function getBaseTotalDue() { return $this->data['base_grand_total']; }
        public function getBaseGrandTotal() { return $this->data['base_grand_total']; }
        public function getBaseCurrencyCode() { return $this->data['base_currency']; }
        public function addCommentToStatusHistory($comment) { $this->comments[] = (string) $comment; return $this; }
        public function getEmailSent() { return true; }
        public function setHoldBeforeState($s) { return $this; }
        public function setHoldBeforeStatus($s) { return $this; }
    }
}
namespace {
    function __($text) { return $text; }
    spl_autoload_register(static function ($class) {
        $prefix = 'PspNordbank\\Payment\\';
        if (strpos($class, $prefix) === 0) {
            $file = $GLOBALS['argv'][1] . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) { require $file; }
        }
    });
    $payment = new \Magento\Sales\Model\Order\Payment();
    $payment->info['psp_payment_id'] = 'pay_1';
    $order = new \Magento\Sales\Model\Order(['increment_id' => '1001', 'store_id' => 1, 'base_grand_total' => 12.5, 'base_currency' => 'EUR'], $payment);
    $search = new \Magento\Framework\Api\SearchCriteriaBuilderFactory();
    $repository = new class($order) implements \Magento\Sales\Api\OrderRepositoryInterface {
        public $saved = 0; private $order;
        public function __construct($order) { $this->order = $order; }
        public function getList($criteria) {
            $match = true;
            foreach ($criteria as [$field, $value]) {
                $have = $field === 'increment_id' ? $this->order->getIncrementId() : $this->order->getStoreId();
                $match = $match && (string) $have === (string) $value;
            }
            return new class($match ? [$this->order] : []) { private $items; public function __construct($items) { $this->items = $items; } public function getItems() { return $this->items; } };
        }
        public function save($order) { $this->saved++; return $order; }
    };
    $events = new class implements \Magento\Framework\Event\ManagerInterface { public function dispatch($eventName, array $data = []) {} };
    $logger = new class implements \Psr\Log\LoggerInterface { public function error($message, array $context = []) {} };
    $store = new \PspNordbank\Payment\Model\Psp\OrderStore($repository, $search, new \Magento\Sales\Model\Order\Config(), new \Magento\Sales\Model\Order\CreditmemoFactory(),
        new class implements \Magento\Sales\Api\CreditmemoManagementInterface {}, new \Magento\Sales\Model\Order\Email\Sender\OrderSender(), new \Magento\Sales\Model\Order\Email\Sender\InvoiceSender(), $events, $logger);
    $out = [];
    $out['other_store'] = $store->forStore(2)->exists('1001');
    $mine = $store->forStore(1);
    $out['own_store'] = $mine->exists('1001');
    $out['filters'] = $search->filters;
    $out['terms'] = $mine->getPaymentTerms('1001');
    $mine->apply('1001', 'paid', 'processing', 'evt_1', ['id' => 'pay_1', 'status' => 'paid', 'amount' => 1250, 'currency' => 'EUR', 'order_reference' => '1001', 'captured_amount' => 600]);
    $mine->hold('1001', 'amount_mismatch', 'evt_2', ['payment_id' => 'pay_1', 'status' => 'paid', 'amount' => 1, 'currency' => 'EUR', 'expected_payment_id' => 'pay_1', 'expected_amount' => 1250, 'expected_currency' => 'EUR', 'correlation_id' => 'corr-1']);
    $out['notifications'] = $payment->notifications;
    $out['events'] = $payment->info['psp_events'];
    $out['held'] = $order->data['held'];
    $out['comments'] = $order->comments;
    echo json_encode($out);
}
